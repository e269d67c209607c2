"""``healthscore api``: the account API on uvicorn, bound before it starts serving."""

from __future__ import annotations

import errno
import logging
import signal
import socket
from types import FrameType

import uvicorn

from worker.api.app import create_app
from worker.errors import AddressInUse, ConfigError
from worker.runtime.modeltopic import newest_models
from worker.settings import Settings
from worker.windows import server

log = logging.getLogger(__name__)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, or a ``ConfigError`` naming the settings (exit code 3 for
    an address in use, as the metrics endpoint does)."""
    where = f"{host}:{port}"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(
                f"api: {where} is already in use; set HEALTHSCORE_API_PORT"
                " (or --port) to a free port"
            ) from None
        raise ConfigError(
            f"api: cannot listen on {where} ({exc.strerror or exc}); check"
            " HEALTHSCORE_API_HOST and HEALTHSCORE_API_PORT"
        ) from None
    return sock


class _Server(uvicorn.Server):
    """Stops on SIGTERM and exits 0, as the worker does; uvicorn would raise the signal
    again once stopped (an exit status of -15). Ctrl-C still ends in KeyboardInterrupt."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and captured and captured[-1] == sig:
            captured.pop()


async def serve_api(settings: Settings) -> None:
    model = await newest_models(settings)
    token = settings.api_bearer_token()
    sock = listen(settings.api_host, settings.api_port)
    redis = server.client(settings)
    app = create_app(model, redis, token=token, settings=settings)
    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        access_log=False,
        # uvicorn's own logging setup would replace the CLI's.
        log_config=None,
    )
    log.info(
        "account API on http://%s:%d (model %s, %s)",
        settings.api_host,
        sock.getsockname()[1],
        model.version,
        "bearer token required" if token else "no token asked",
    )
    try:
        await _Server(config).serve(sockets=[sock])
    finally:
        await redis.aclose()
        sock.close()
