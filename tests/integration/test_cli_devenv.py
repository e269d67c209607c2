"""A second terminal, as a user has it: ``healthscore dev`` runs in a directory, and the other
commands run there with no variable set reach its broker and Redis through its file."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]
DEV_FILE = Path(".healthscore/dev.env")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    # The checkout on the path, not the working directory: the tests run elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[2]), env.get("PYTHONPATH")])
    )
    return {**env, **extra}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(log: Path, proc: subprocess.Popen[bytes], pattern: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if found := re.search(pattern, text):
            return found.group(0)
        if proc.poll() is not None:
            pytest.fail(f"healthscore dev exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {pattern!r} within {within} s:\n{log.read_text()[-3000:]}")


def _first_line(command: list[str], cwd: Path, within: float) -> tuple[str, str]:
    """The first stdout line of a command that runs until stopped, and its stderr."""
    proc = subprocess.Popen(
        [*HEALTHSCORE, *command],
        cwd=cwd,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout=within)
        line = proc.stdout.readline() if ready else ""
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert line, f"no line within {within} s; stderr:\n{err}"
    return line, err


def _start_dev(cwd: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = cwd / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*HEALTHSCORE, "dev", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_clean_env(HEALTHSCORE_METRICS_PORT="0"),
        )
    return proc, log


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals, log: Path) -> None:
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code == 0, log.read_text()[-3000:]


def test_commands_in_a_second_terminal_use_the_running_dev(tmp_path: Path) -> None:
    proc, log = _start_dev(tmp_path, "--accounts", "8", "--rate", "100", "--all-alerts")
    try:
        account = _wait_for(
            log, proc, r"(?m)^[\w-]+(?=: (?:first scored|\w+ ->) (?:green|yellow|red))", within=120
        )
        assert (tmp_path / DEV_FILE).is_file()

        result = subprocess.run(
            [*HEALTHSCORE, "explain", account, "--json"],
            cwd=tmp_path,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["account_id"] == account
        assert f"from {DEV_FILE}" in result.stderr
        assert f"pid {proc.pid}" in result.stderr

        line, err = _first_line(["alerts", "--from-beginning", "--json"], tmp_path, within=60)
        assert json.loads(line)["tier"] in ("green", "yellow", "red")
        assert f"from {DEV_FILE}" in err
    finally:
        _stop(proc, signal.SIGTERM, log)
    assert not (tmp_path / DEV_FILE).exists(), "dev left its file behind"


def test_dev_removes_its_file_on_ctrl_c(tmp_path: Path) -> None:
    proc, log = _start_dev(tmp_path, "--no-simulate")
    try:
        _wait_for(log, proc, r"ready", within=120)
        text = (tmp_path / DEV_FILE).read_text()
        assert f"HEALTHSCORE_DEV_PID={proc.pid}" in text
    finally:
        _stop(proc, signal.SIGINT, log)
    assert not (tmp_path / DEV_FILE).parent.exists()


def _explain_error(cwd: Path, *flags: str, **env: str) -> str:
    result = subprocess.run(
        [*HEALTHSCORE, "explain", "acme", *flags],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def _write_file(cwd: Path, redis_port: int, pid: int) -> None:
    (cwd / DEV_FILE).parent.mkdir(exist_ok=True)
    (cwd / DEV_FILE).write_text(
        f"HEALTHSCORE_KAFKA_BOOTSTRAP=127.0.0.1:{_closed_port()}\n"
        f"HEALTHSCORE_REDIS_URL=redis://127.0.0.1:{redis_port}/0\n"
        f"HEALTHSCORE_DEV_PID={pid}\n"
    )


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    # Every address is a closed port, so the one-line error names the one that was used.
    file_port, env_port, flag_port = _closed_port(), _closed_port(), _closed_port()
    _write_file(tmp_path, file_port, os.getpid())
    assert f":{file_port}" in _explain_error(tmp_path).splitlines()[-1]
    env = {"HEALTHSCORE_REDIS_URL": f"redis://127.0.0.1:{env_port}/0"}
    assert f":{env_port}" in _explain_error(tmp_path, **env).splitlines()[-1]
    err = _explain_error(tmp_path, "--redis-url", f"redis://127.0.0.1:{flag_port}/0", **env)
    assert f":{flag_port}" in err.splitlines()[-1]


def test_a_file_left_by_a_killed_dev_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    file_port = _closed_port()
    _write_file(tmp_path, file_port, gone.pid)
    err = _explain_error(tmp_path)
    assert f"ignoring {DEV_FILE}: the healthscore dev that wrote it (pid {gone.pid}) is gone" in err
    assert f":{file_port}" not in err
