"""A TCP forwarder to pull out and plug back in: a broker outage without a broker restart
(the embedded broker is memory-only, a restart would lose every topic).

It runs its own event loop in a thread, so it keeps forwarding while the test's loop is
blocked, e.g. in the broker's readiness probe, which connects through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Self

from worker.embedded import HOST, free_port


class Cable:
    """Forwards ``HOST:port`` to ``HOST:target_port`` until ``cut()``, again after ``mend()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cable", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self.mend()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones, like a broker that went away."""
        self._call(self._cut())

    def mend(self) -> None:
        """Accept and forward connections again, on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._link, HOST, self.port)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        for writer in list(self._links):
            writer.transport.abort()  # a reset, not a polite close: nothing more gets through
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _shutdown(self) -> None:
        await self._cut()
        # The forwarding tasks end by themselves once their connections are reset.
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:
                task.cancel()

    async def _link(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            broker_in, broker_out = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            client_out.transport.abort()
            return
        if self._server is None:  # cut while this connection was being opened
            for writer in (client_out, broker_out):
                writer.transport.abort()
            return
        self._links |= {client_out, broker_out}
        try:
            await asyncio.gather(_pipe(client_in, broker_out), _pipe(broker_in, client_out))
        finally:
            self._links -= {client_out, broker_out}


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:  # the other end went away (or the cable was cut): end this direction
        pass
    finally:
        # One direction ending ends the connection; the other pipe then sees EOF or a reset.
        with contextlib.suppress(OSError):
            sink.close()
