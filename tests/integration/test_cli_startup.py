"""Commands started with Redis and the broker out of reach, as a user would meet them:
one line saying what could not be reached and a non-zero exit code, never a traceback.
The worker is the exception: it waits for them, and stops cleanly when told to."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

HEALTHSCORE = [sys.executable, "-m", "worker.cli"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSCORE_")}
    return {
        **env,
        "HEALTHSCORE_METRICS_PORT": "0",
        "HEALTHSCORE_KAFKA_BOOTSTRAP": f"127.0.0.1:{_closed_port()}",
        "HEALTHSCORE_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
    }


@pytest.mark.parametrize(
    ("command", "unreachable"),
    [
        (["replay", "--from-beginning"], "Redis"),  # Redis is asked first: nothing changed yet
        (["alerts", "--from-beginning"], "the broker"),
        (["simulate", "--duration", "1", "--no-progress"], "the broker"),
        (["explain", "acme"], "Redis"),
    ],
)
def test_a_command_that_cannot_reach_its_backends_says_so_in_one_line(
    command: list[str], unreachable: str
) -> None:
    result = subprocess.run(
        [*HEALTHSCORE, *command], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"healthscore: cannot reach {unreachable}"), result.stderr


@pytest.mark.parametrize("waiting_for", ["redis", "kafka"])
def test_a_worker_waiting_for_a_backend_stops_cleanly_on_sigterm(
    waiting_for: str, request: pytest.FixtureRequest
) -> None:
    env = _env()
    if waiting_for == "kafka":  # Redis is checked first: give it one that answers
        env["HEALTHSCORE_REDIS_URL"] = request.getfixturevalue("redis_url")
    proc = subprocess.Popen(
        [*HEALTHSCORE, "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # waits, retrying, rather than giving up
            if f"{waiting_for} unavailable" in line:
                break
            assert time.monotonic() < deadline, f"the worker never reported {waiting_for} away"
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
    assert f"stopped while waiting for {waiting_for}" in output
