"""A local stand-in for a Slack incoming webhook: a real HTTP server in a thread that
records every request and answers from a script (200, 429 with Retry-After, 500, a
slow answer), and schema-valid alerts to send through the notifier."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worker.alerts import alert_id
from worker.contracts import validator
from worker.timefmt import rfc3339


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0  # seconds before answering: beyond the client's timeout, "slow"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"


@dataclass(frozen=True)
class Request:
    payload: dict[str, Any]
    reply: Reply
    at: float

    @property
    def acknowledged(self) -> bool:
        """Answered 2xx in time (a slow answer reaches a client that gave up)."""
        return 200 <= self.reply.status < 300 and self.reply.delay == 0.0

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))


class FakeSlack:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake._lock:
                    reply = fake.script.popleft() if fake.script else fake.default
                    fake.requests.append(Request(json.loads(body), reply, time.monotonic()))
                time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body.encode())
                except OSError:
                    pass  # the client gave up on a slow answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def then(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def acknowledged(self) -> list[Request]:
        return [r for r in self.snapshot() if r.acknowledged]


def make_alert(
    account_id: str,
    *,
    seq: int = 2,
    previous_tier: str | None = "green",
    tier: str = "red",
    score: float = 26.3,
    previous_score: float | None = 80.0,
    segment: str | None = "mid_market",
    delivery: str | None = "live",
    ts: float | None = None,
) -> dict[str, Any]:
    """A schema-valid alert; ``delivery=None`` leaves the field out, as in an alert
    written before alerts carried it (the notifier takes that as live)."""
    labels = {"green": "Doing well", "yellow": "Take notice", "red": "Requires attention"}
    alert: dict[str, Any] = {
        "alert_id": alert_id(account_id, seq, previous_tier, tier),
        "account_id": account_id,
        "segment": segment,
        "previous_tier": previous_tier,
        "tier": tier,
        "tier_label": labels.get(tier, tier),
        "previous_score": previous_score,
        "score": score,
        "triggering_component": {
            "name": "escalations",
            "previous_subscore": 100.0,
            "subscore": 0.0,
            "previous_value": 0.0,
            "value": 3.0,
            "weight": 1.25,
            "contribution_change": -43.86,
        },
        "components": {
            "escalations": {"subscore": 0.0, "value": 3.0, "weight": 1.25, "contribution": 0.0},
            "support_tickets": {
                "subscore": 100.0,
                "value": 1.0,
                "weight": 0.75,
                "contribution": 26.3,
            },
        },
        "cause": {
            "kind": "event",
            "event_id": "t-1",
            "event_type": "ticket",
            "topic": "events.ticket",
            "partition": 0,
            "offset": 1,
        },
        "model_version": "default-2026.11",
        "ts": rfc3339(time.time() if ts is None else ts),
        "seq": seq,
        "delivery": delivery or "live",
    }
    errors = [e.message for e in validator("alert").iter_errors(alert)]
    assert not errors, errors
    if delivery is None:
        del alert["delivery"]
    return alert
