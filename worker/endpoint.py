"""The worker's HTTP endpoint: /metrics, /healthz and /readyz, anything else 404.

A thread of its own, not the event loop: a wedged loop must make /healthz fail, so
the answers are computed from what the loop last recorded (``worker.probes``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from worker.probes import Probes, Verdict

log = logging.getLogger(__name__)


class Thresholds(NamedTuple):
    max_poll_age: float  # seconds without a sign of life before /healthz fails
    max_answer_age: float  # seconds without an answer of Kafka or Redis before /readyz fails


def _handler(
    registry: CollectorRegistry, probes: Probes, limits: Thresholds
) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[], Verdict]] = {
        "/healthz": lambda: probes.healthz(limits.max_poll_age),
        "/readyz": lambda: probes.readyz(limits.max_answer_age),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif (probe := routes.get(path)) is not None:
                verdict = probe()
                self._reply(
                    200 if verdict.ok else 503,
                    "application/json",
                    json.dumps(verdict.body).encode(),
                )
            else:
                self._reply(404, "application/json", b'{"error": "not found"}')

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Scrapes and probes every few seconds: not worth an INFO line each.
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def start(
    host: str, port: int, registry: CollectorRegistry, probes: Probes, limits: Thresholds
) -> ThreadingHTTPServer:
    """Bind ``host``:``port`` (``OSError`` if it cannot) and serve from a daemon thread."""
    server = ThreadingHTTPServer((host, port), _handler(registry, probes, limits))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="healthscore-endpoint", daemon=True).start()
    return server
