"""Where a command's addresses come from: flags > environment > dev's file > defaults."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker import devenv
from worker.cli import _connection_flags, _parser, load_settings
from worker.settings import Settings

FILE = ".healthscore/dev.env"
FILE_BROKER, FILE_REDIS = "file-broker:1", "redis://file-redis:2/0"


def _dev_file(directory: Path, pid: int | None) -> Path:
    path = directory / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# a comment\nHEALTHSCORE_KAFKA_BOOTSTRAP={FILE_BROKER}\n"
        f"HEALTHSCORE_REDIS_URL={FILE_REDIS}\nHEALTHSCORE_GROUP_ID=not-an-address\n"
        + ("" if pid is None else f"HEALTHSCORE_DEV_PID={pid}\n")
    )
    return path


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _settings(
    argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> tuple[Settings, str]:
    settings = load_settings(_parser().parse_args(argv), environ)
    return settings, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_without_file_env_or_flags_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    settings, err = _settings(["explain", "a"], {}, capsys)
    assert (settings.kafka_bootstrap, settings.redis_url) == (
        Settings().kafka_bootstrap,
        Settings().redis_url,
    )
    assert err == ""


def test_the_file_of_a_running_dev_gives_the_addresses_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _dev_file(tmp_path, os.getpid())
    settings, err = _settings(["alerts"], {}, capsys)
    assert (settings.kafka_bootstrap, settings.redis_url) == (FILE_BROKER, FILE_REDIS)
    assert settings.group_id == Settings().group_id  # only the addresses are taken
    assert err.count("\n") == 1
    assert FILE in err
    assert f"pid {os.getpid()}" in err


def test_the_environment_beats_the_file_and_flags_beat_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _dev_file(tmp_path, os.getpid())
    env = {"HEALTHSCORE_REDIS_URL": "redis://env:3/0"}
    settings, err = _settings(["explain", "a"], env, capsys)
    assert (settings.kafka_bootstrap, settings.redis_url) == (FILE_BROKER, "redis://env:3/0")
    assert "file-redis" not in err
    assert FILE_BROKER in err

    settings, err = _settings(
        ["explain", "a", "--redis-url", "redis://flag:4/0", "--bootstrap", "flag:5"], env, capsys
    )
    assert (settings.kafka_bootstrap, settings.redis_url) == ("flag:5", "redis://flag:4/0")
    assert err == ""  # the file played no part


def test_an_empty_variable_is_unset_so_the_file_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _dev_file(tmp_path, os.getpid())
    settings, _ = _settings(["explain", "a"], {"HEALTHSCORE_REDIS_URL": ""}, capsys)
    assert settings.redis_url == FILE_REDIS


def test_a_file_whose_dev_is_gone_is_ignored_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _dev_file(tmp_path, _gone_pid())
    settings, err = _settings(["explain", "a"], {}, capsys)
    assert settings.redis_url == Settings().redis_url
    assert err.count("\n") == 1
    assert "ignoring" in err
    assert "is gone" in err


def test_dev_env_points_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _dev_file(tmp_path / "elsewhere", os.getpid())
    settings, _ = _settings(["explain", "a"], {"HEALTHSCORE_DEV_ENV": str(path)}, capsys)
    assert settings.redis_url == FILE_REDIS


def test_dev_reads_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _dev_file(tmp_path, os.getpid())
    settings, err = _settings(["dev"], {}, capsys)
    assert settings.redis_url == Settings().redis_url
    assert err == ""


def test_an_unreadable_file_is_ignored_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / FILE
    path.parent.mkdir()
    path.write_bytes(b"HEALTHSCORE_REDIS_URL=redis://x:1/0\nHEALTHSCORE_DEV_PID=\xff\n")
    settings, err = _settings(["explain", "a"], {}, capsys)
    assert settings.redis_url == Settings().redis_url
    assert err.count("\n") == 1
    assert "ignoring" in err


def _leaves(
    parser: argparse.ArgumentParser, name: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every runnable command, nested ones (``notify slack``) by their full name."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return [(name, parser)]
    return [
        leaf
        for sub, command in groups[0].choices.items()
        for leaf in _leaves(command, f"{name} {sub}".strip())
    ]


def test_every_command_but_dev_takes_the_flags() -> None:
    leaves = _leaves(_parser())
    assert "notify slack" in dict(leaves)
    for name, command in leaves:
        flags = {o for a in command._actions for o in a.option_strings}
        assert ({"--bootstrap", "--redis-url"} <= flags) is (name != "dev"), name


def test_nested_commands_get_the_flags_too() -> None:
    parser = argparse.ArgumentParser()
    notify = parser.add_subparsers().add_parser("notify")
    notify.add_subparsers().add_parser("slack")
    _connection_flags(parser)
    args = parser.parse_args(["notify", "slack", "--bootstrap", "b:1", "--redis-url", "redis://r"])
    assert (args.bootstrap, args.redis_url) == ("b:1", "redis://r")


def test_published_writes_atomically_and_removes_only_its_own(tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap="b:1", redis_url="redis://r:2/0", dev_env=str(tmp_path / "d" / "dev.env")
    )
    with devenv.published(settings) as path:
        assert path is not None
        found = devenv.read(path)
        assert found.addresses == {"kafka_bootstrap": "b:1", "redis_url": "redis://r:2/0"}
        assert found.pid == os.getpid()
        assert [p.name for p in path.parent.iterdir()] == ["dev.env"]  # no temporary left
    assert not path.exists()
    assert not path.parent.exists()  # made for the file, removed with it

    other = _dev_file(tmp_path, 1)  # pid 1 is alive and not us
    with devenv.published(settings.replace(dev_env=str(other))) as path:
        assert path is None
    assert other.exists()
