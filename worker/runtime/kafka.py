"""Every Kafka client the project makes, made here: one place turns the settings into
aiokafka's connection arguments (bootstrap, security protocol, SASL, TLS), so no
command can reach a managed broker the worker reaches and another not.

``tests/unit/test_kafka_factory.py`` checks that no other module constructs an
``AIOKafka*`` client itself.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from worker.errors import ConfigError
from worker.settings import Settings, env_name, read_secret


def kafka_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments that every client of ``settings`` connects with."""
    protocol = settings.kafka_security_protocol.upper()
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL_"):
        # aiokafka takes SCRAM's credentials under the PLAIN names too.
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism.upper(),
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=sasl_password(settings),
        )
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The broker's certificate checked against the CA file (else the system's CAs), the
    client certificate presented when one is set."""
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile or None,
            certfile=settings.kafka_ssl_certfile or None,
            keyfile=settings.kafka_ssl_keyfile or None,
        )
    except (OSError, ssl.SSLError) as exc:  # a file that is no PEM, a key of another cert
        raise ConfigError(
            f"Kafka TLS files ({env_name('kafka_ssl_cafile')},"
            f" {env_name('kafka_ssl_certfile')}, {env_name('kafka_ssl_keyfile')})"
            f" cannot be used: {exc}"
        ) from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def sasl_password(settings: Settings) -> str:
    if settings.kafka_sasl_password_file:
        return read_secret(settings.kafka_sasl_password_file)
    return settings.kafka_sasl_password


def consumer(settings: Settings, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **kafka_options(settings), **kwargs)


def producer(settings: Settings, **kwargs: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**kafka_options(settings), **kwargs)


def admin(settings: Settings, **kwargs: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**kafka_options(settings), **kwargs)
