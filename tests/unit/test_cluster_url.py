"""A Redis Cluster named by ``HEALTHSCORE_REDIS_URL`` (``windows.server``): the nodes,
credentials and TLS read from the URL, a bad one refused in a line naming the setting."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster

from worker.errors import ConfigError
from worker.settings import Settings
from worker.windows import server


def test_a_cluster_url_gives_a_cluster_client_with_every_node_named() -> None:
    client = server.connect("redis+cluster://alice:s%40cret@10.0.0.1:7000,10.0.0.2:7001", 2.0)
    assert isinstance(client, RedisCluster)
    assert [(n.host, n.port) for n in client.startup_nodes] == [
        ("10.0.0.1", 7000),
        ("10.0.0.2", 7001),
    ]
    kwargs = client.get_connection_kwargs()
    assert (kwargs["username"], kwargs["password"]) == ("alice", "s@cret")
    assert kwargs["socket_timeout"] == 2.0


def test_a_password_file_reaches_a_cluster_and_tls_checks_the_ca() -> None:
    client = server.connect(
        "rediss+cluster://db.internal:6380", 2.0, ca_file="/etc/ca.pem", password="from-file"
    )
    assert isinstance(client, RedisCluster)
    kwargs = client.get_connection_kwargs()
    assert kwargs["password"] == "from-file"
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"


def test_one_redis_stays_one_redis() -> None:
    assert isinstance(server.connect("redis://127.0.0.1:6379/0", 2.0), Redis)


@pytest.mark.parametrize(
    "url", ["redis+cluster://", "redis+cluster://host", "redis+cluster://host:port,other:7000"]
)
def test_a_cluster_url_without_host_and_port_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="HEALTHSCORE_REDIS_URL"):
        server.connect(url, 2.0)


def test_the_settings_take_a_cluster_url_and_name_the_schemes_otherwise() -> None:
    Settings(redis_url="redis+cluster://127.0.0.1:7000").validate()
    with pytest.raises(ConfigError, match="redis\\+cluster://") as refused:
        Settings(redis_url="cluster://alice:secret@127.0.0.1:7000").validate()
    assert "secret" not in str(refused.value)  # a URL may carry a password
