"""The address file of ``healthscore dev``, and the layers every command's settings come from.

``healthscore dev`` writes the broker and Redis addresses it started to a file
(``HEALTHSCORE_DEV_ENV``, ``.healthscore/dev.env`` under the current directory by
default) and removes it when it stops; the other commands read it when neither a flag
nor the environment names an address, so a second terminal in the same directory needs
nothing set. The file is ``HEALTHSCORE_NAME=value`` lines (a shell can source it) with
the writer's pid: a file whose writer is gone (killed with SIGKILL) is ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from worker.settings import Settings, env_name

ADDRESSES = {"kafka_bootstrap": "broker", "redis_url": "Redis"}  # setting -> what it names
PID = "HEALTHSCORE_DEV_PID"
HEADER = "# written by `healthscore dev`, removed when it stops; other commands run here use it\n"


@dataclasses.dataclass(frozen=True, slots=True)
class DevFile:
    path: Path
    addresses: dict[str, str]  # setting -> value, the addresses only
    pid: int | None


def read(path: Path) -> DevFile:
    """Parse the file; raises OSError/UnicodeError/ValueError for one that cannot be read."""
    values: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    pid = values.get(PID)
    return DevFile(
        path,
        {name: values[env_name(name)] for name in ADDRESSES if values.get(env_name(name))},
        int(pid) if pid else None,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def layered_environ(
    environ: Mapping[str, str], flags: Mapping[str, str], *, use_file: bool = True
) -> tuple[dict[str, str], str | None]:
    """The ``HEALTHSCORE_*`` values a command runs with: defaults < the dev file < the
    environment < ``flags`` (env name -> value). Returns them and a line saying what came
    from the dev file, or why it was ignored (None when it played no part)."""
    merged = {k: v for k, v in environ.items() if v != ""}  # empty: not set, as for a setting
    merged.update(flags)
    missing = [name for name in ADDRESSES if env_name(name) not in merged]
    if not use_file or not missing:
        return merged, None
    path = Path(environ.get(env_name("dev_env")) or Settings().dev_env)
    if not path.is_file():
        return merged, None
    try:
        found = read(path)
    except (OSError, UnicodeError, ValueError) as exc:
        return merged, f"ignoring {path}: {exc}"
    if found.pid is not None and not alive(found.pid):
        return (
            merged,
            f"ignoring {path}: the healthscore dev that wrote it (pid {found.pid}) is gone",
        )
    used = {name: found.addresses[name] for name in missing if name in found.addresses}
    if not used:
        return merged, None
    merged.update({env_name(name): value for name, value in used.items()})
    what = ", ".join(f"{ADDRESSES[name]} {value}" for name, value in used.items())
    return merged, f"using {what} from {path}" + (
        f" (healthscore dev, pid {found.pid})" if found.pid is not None else ""
    )


def write(path: Path, settings: Settings) -> None:
    """Replace the file in one step: a reader sees the old one or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = (
        HEADER
        + "".join(f"{env_name(name)}={getattr(settings, name)}\n" for name in ADDRESSES)
        + f"{PID}={os.getpid()}\n"
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dev.env.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def other_owner(path: Path) -> int | None:
    """The pid of another live ``healthscore dev`` whose file this is, if any."""
    try:
        pid = read(path).pid
    except (OSError, UnicodeError, ValueError):
        return None
    return pid if pid is not None and pid != os.getpid() and alive(pid) else None


@contextlib.contextmanager
def published(settings: Settings) -> Iterator[Path | None]:
    """Write the file for the ``with`` block (None: another live dev owns it, left alone);
    remove it afterwards if it is still ours."""
    path = Path(settings.dev_env)
    if other_owner(path) is not None:
        yield None
        return
    created = not path.parent.exists()
    write(path, settings)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, UnicodeError, ValueError):
            if read(path).pid == os.getpid():
                path.unlink()
            if created:
                path.parent.rmdir()  # only if empty, and only the directory made for it
