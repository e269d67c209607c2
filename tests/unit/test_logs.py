"""Log lines: one JSON object a line for a collector, plain text for a person."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from worker import logs
from worker.clock import WallClock
from worker.errors import ConfigError
from worker.events.intake import Intake
from worker.metrics import Metrics
from worker.settings import Settings

# Both addresses refuse connections at once: the worker logs its start and then one
# line per retry, and never gets further.
UNREACHABLE = {
    "HEALTHSCORE_REDIS_URL": "redis://127.0.0.1:1/0",
    "HEALTHSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "HEALTHSCORE_METRICS_PORT": "0",
}


def _worker_lines(tmp_path: Path, **env: str) -> list[str]:
    """The first lines a worker writes to stderr when stderr is a pipe."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    environ |= UNREACHABLE | env | {"HEALTHSCORE_DEV_ENV": str(tmp_path / "none.env")}
    command = [str(Path(sys.executable).parent / "healthscore"), "worker"]
    with subprocess.Popen(
        command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as worker:
        assert worker.stderr is not None
        try:
            lines = [worker.stderr.readline() for _ in range(3)]
        finally:
            worker.kill()
    assert all(lines), lines
    return lines


def test_a_worker_whose_stderr_is_a_pipe_logs_one_json_object_a_line(tmp_path: Path) -> None:
    lines = [orjson.loads(line) for line in _worker_lines(tmp_path)]
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys()
        assert time.time() - _epoch(line["ts"]) < 600
    assert (lines[0]["logger"], lines[0]["level"]) == ("worker.app", "INFO")
    assert lines[1]["message"].startswith("hot path: ")  # compiled or pure: which one runs
    assert any(line["level"] == "WARNING" and "redis" in line["message"] for line in lines)


def test_log_format_plain_is_plain_even_into_a_pipe(tmp_path: Path) -> None:
    lines = _worker_lines(tmp_path, HEALTHSCORE_LOG_FORMAT="plain")
    assert " INFO worker.app: model " in lines[0]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(lines[0])


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts).timestamp()


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("log_format", "tty", "json"),
    [
        ("auto", True, False),
        ("auto", False, True),
        ("json", True, True),
        ("json", False, True),
        ("plain", True, False),
        ("plain", False, False),
    ],
)
def test_auto_is_plain_on_a_terminal_and_json_otherwise(
    log_format: str, tty: bool, json: bool
) -> None:
    assert logs.wants_json(log_format, _Stream(tty)) is json


def test_configure_writes_json_to_a_stream_that_is_not_a_terminal() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers.clear()  # pytest's handlers: configure leaves a set-up logging alone
    stream = _Stream(tty=False)
    try:
        logs.configure(Settings(log_format="auto", log_level="WARNING"), stream)
        logging.getLogger("worker.somewhere").warning("hello %s", "there")
        logging.getLogger("worker.somewhere").info("not at WARNING")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    (line,) = stream.getvalue().splitlines()
    assert orjson.loads(line)["message"] == "hello there"


def _format(**kwargs: Any) -> dict[str, Any]:
    record = logging.LogRecord(
        "worker.pipeline", logging.WARNING, __file__, 1, "record %s dead-lettered", ("x",), None
    )
    record.__dict__.update(kwargs)
    return dict(orjson.loads(logs.JsonFormatter().format(record)))


def test_json_lines_carry_the_record_position_where_the_call_gives_it() -> None:
    line = _format(topic="events.login", partition=3, offset=42)
    assert (line["message"], line["level"]) == ("record x dead-lettered", "WARNING")
    assert (line["topic"], line["partition"], line["offset"]) == ("events.login", 3, 42)
    assert "topic" not in _format()


def test_a_traceback_stays_inside_its_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        line = _format(exc_info=sys.exc_info())
    assert "ValueError: boom" in line["exc_info"]
    assert "\n" not in logs.JsonFormatter().format(
        logging.makeLogRecord({"msg": "a\nb", "exc_info": None})
    )


def test_the_dead_letter_warning_names_the_record(caplog: pytest.LogCaptureFixture) -> None:
    raw = SimpleNamespace(
        topic="events.ticket", partition=2, offset=17, key=b"k", value=b"{}", timestamp=0
    )
    intake = Intake(Settings(), WallClock(), Metrics())
    with caplog.at_level(logging.WARNING, logger="worker.events.intake"):
        intake.failed(raw, RuntimeError("poison"), 0.0, [])
    (record,) = caplog.records
    line = orjson.loads(logs.JsonFormatter().format(record))
    assert (line["topic"], line["partition"], line["offset"]) == ("events.ticket", 2, 17)


@pytest.mark.parametrize("value", ["auto", "json", "plain"])
def test_log_formats(value: str) -> None:
    assert Settings.from_env({"HEALTHSCORE_LOG_FORMAT": value}).log_format == value


def test_an_unknown_log_format_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="HEALTHSCORE_LOG_FORMAT"):
        Settings.from_env({"HEALTHSCORE_LOG_FORMAT": "xml"})
