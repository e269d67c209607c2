"""Every Kafka client comes from ``worker.runtime.kafka``, and it connects as the
HEALTHSCORE_KAFKA_* settings say (no broker here: the embedded one has no SASL or TLS,
so the options and the SSL context are what is checked)."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.certs import Certs, make_certs
from worker.errors import ConfigError
from worker.runtime import kafka
from worker.settings import Settings

WORKER = Path(__file__).parents[2] / "worker"
FACTORY = WORKER / "runtime" / "kafka.py"
# The embedded broker's own readiness probe: a plaintext broker it started on loopback.
ALLOWED = {FACTORY, WORKER / "embedded.py"}


def _constructions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name.startswith("AIOKafka"):
                found.append(f"{path.relative_to(WORKER.parent)}:{node.lineno} {name}")
    return found


def test_no_module_but_the_factory_constructs_a_kafka_client() -> None:
    made_elsewhere = [
        c
        for path in sorted(WORKER.rglob("*.py"))
        if path not in ALLOWED
        for c in _constructions(path)
    ]
    assert made_elsewhere == []
    assert len(_constructions(FACTORY)) == 3  # the check itself sees constructions


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"), "kafka")


def _settings(**values: Any) -> Settings:
    settings = Settings(**values)
    settings.validate()
    return settings


def test_plaintext_by_default_with_nothing_else() -> None:
    assert kafka.kafka_options(Settings()) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_ssl_adds_a_verifying_context_and_no_sasl(certs: Certs) -> None:
    options = kafka.kafka_options(
        _settings(kafka_security_protocol="ssl", kafka_ssl_cafile=str(certs.ca))
    )
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "kafka CA"),),)]
    assert not any(k.startswith("sasl") for k in options)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "scram-sha-512"])
def test_sasl_plaintext_carries_the_mechanism_and_credentials_only(mechanism: str) -> None:
    options = kafka.kafka_options(
        _settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism=mechanism,
            kafka_sasl_username="scorer",
            kafka_sasl_password="s3cret",
        )
    )
    assert options == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism.upper(),
        "sasl_plain_username": "scorer",
        "sasl_plain_password": "s3cret",
    }


def test_sasl_ssl_has_both_and_reads_the_password_file(certs: Certs, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-the-file\n")
    options = kafka.kafka_options(
        _settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="scorer",
            kafka_sasl_password_file=str(secret),
            kafka_ssl_cafile=str(certs.ca),
            kafka_ssl_check_hostname=False,
        )
    )
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "from-the-file"
    assert options["ssl_context"].check_hostname is False
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the CA is still checked


def test_a_client_certificate_is_loaded_and_a_mismatched_key_is_a_config_error(
    certs: Certs, tmp_path: Path
) -> None:
    settings = _settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(certs.ca),
        kafka_ssl_certfile=str(certs.cert),
        kafka_ssl_keyfile=str(certs.key),
    )
    assert isinstance(kafka.ssl_context(settings), ssl.SSLContext)
    other = make_certs(tmp_path, "other")
    with pytest.raises(ConfigError, match="HEALTHSCORE_KAFKA_SSL_KEYFILE"):
        kafka.ssl_context(settings.replace(kafka_ssl_keyfile=str(other.key)))


async def test_each_client_kind_is_built_with_the_options(certs: Certs) -> None:
    settings = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="scorer",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=str(certs.ca),
    )
    consumer = kafka.consumer(settings, "t", group_id="g")
    producer = kafka.producer(settings, client_id="p")
    admin = kafka.admin(settings, client_id="a")
    for client in (consumer._client, producer.client, admin._client):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-256"
        assert client._sasl_plain_username == "scorer"
        assert isinstance(client._ssl_context, ssl.SSLContext)
    await consumer.stop()
    await producer.stop()
    await admin.close()


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"kafka_security_protocol": "TLS"}, "HEALTHSCORE_KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "HEALTHSCORE_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_password": "a", "kafka_sasl_password_file": "/etc/hostname"}, "not both"),
        ({"kafka_ssl_certfile": "/etc/hostname"}, "go together"),
        ({"kafka_ssl_cafile": "/no/such/ca.pem"}, "HEALTHSCORE_KAFKA_SSL_CAFILE: no file"),
        ({"redis_ca_file": "/etc/hostname"}, "no rediss:// URL"),
        ({"redis_password_file": "/no/such/file"}, "HEALTHSCORE_REDIS_PASSWORD_FILE: no file"),
    ],
)
def test_wrong_secure_settings_are_config_errors(values: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _settings(**values)


def test_secrets_are_not_in_the_settings_repr() -> None:
    settings = Settings(
        kafka_sasl_password="kafka-secret-91", redis_url="rediss://scorer:redis-secret-17@db:6380/0"
    )
    assert "kafka-secret-91" not in repr(settings)
    assert "redis-secret-17" not in repr(settings)
