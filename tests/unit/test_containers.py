"""Static checks of docker-compose.yml and the Dockerfile (no Docker engine needed).

They hold the container setup to the worker's real configuration: every
``HEALTHSCORE_*`` name must be a setting, the stack must be KRaft-only, and
the worker must reach Kafka on the broker's internal listener.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.cli import _parser
from worker.settings import PREFIX, Settings, documented_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

ENV_NAME = re.compile(r"\bHEALTHSCORE_[A-Z0-9_]+\b")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment``, mapping or ``KEY=VALUE`` list form, as str -> str."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    assert isinstance(env, dict)
    for key, value in env.items():
        # Compose rejects booleans here; YAML's `true`/`yes` must be quoted.
        assert not isinstance(value, bool), f"{key}: quote the boolean value"
        assert value is None or isinstance(value, str | int | float), key
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def listeners(spec: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    out: dict[str, tuple[str, int]] = {}
    for item in spec.split(","):
        match = re.fullmatch(r"\s*([A-Z0-9_]+)://([^:]*):(\d+)\s*", item)
        assert match, f"unparsable listener {item!r}"
        out[match[1]] = (match[2], int(match[3]))
    return out


def listeners_map(spec: str) -> dict[str, str]:
    """``NAME:PROTOCOL,...`` -> {NAME: PROTOCOL}."""
    return dict(item.strip().split(":", 1) for item in spec.split(","))


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no conditions at all
        return {name: {} for name in deps}
    return deps


def published_container_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):  # long syntax
            ports.add(int(port["target"]))
        else:
            ports.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"

    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args.strip()))
    return stages


def last_arg(stage: list[tuple[str, str]], instruction: str) -> str | None:
    found = [args for instr, args in stage if instr == instruction]
    return found[-1] if found else None


# --------------------------------------------------------------------------- compose


def test_compose_has_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "redis", "worker"} <= set(services)


def test_every_healthscore_variable_is_a_real_setting() -> None:
    known = {name for name, _default, _help in documented_settings()}
    used = set(ENV_NAME.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
    assert used, "the compose file configures nothing through HEALTHSCORE_* variables"
    assert used <= known, f"not settings of worker/settings.py: {sorted(used - known)}"


def test_worker_is_configured_only_through_healthscore_variables(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    assert "env_file" not in worker
    env = environment(worker)
    assert {
        "HEALTHSCORE_KAFKA_BOOTSTRAP",
        "HEALTHSCORE_REDIS_URL",
        "HEALTHSCORE_METRICS_PORT",
    } <= set(env)
    assert all(name.startswith(PREFIX) for name in env), sorted(env)
    # The values must also parse and validate as the worker will at start-up.
    Settings.from_env(env)


def test_kafka_runs_kraft_without_zookeeper(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "zookeeper" not in name.lower()
        assert "zookeeper" not in str(service.get("image", "")).lower()
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = environment(kafka)
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert set(env["KAFKA_PROCESS_ROLES"].replace(" ", "").split(",")) == {"broker", "controller"}
    assert env["CLUSTER_ID"], "the image formats KRaft storage with CLUSTER_ID"

    # The single voter is this node, on its own controller listener.
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    _host, controller_port = listeners(env["KAFKA_LISTENERS"])[controller]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        f"{env['KAFKA_NODE_ID']}@kafka:{controller_port}"
    )
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_kafka_has_an_internal_and_a_localhost_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    env = environment(kafka)
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = listeners_map(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
    assert set(bound) <= set(protocols)
    assert set(advertised) <= set(bound)
    # Every advertised listener is bound on the port it advertises.
    for name, (_host, port) in advertised.items():
        assert bound[name][1] == port, name
    hosts = {host for host, _port in advertised.values()}
    assert {"kafka", "localhost"} <= hosts
    # The host-side one is actually published.
    (external_port,) = (port for host, port in advertised.values() if host == "localhost")
    assert external_port in published_container_ports(kafka)


def test_worker_bootstraps_from_the_internal_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka_env = environment(services["kafka"])
    internal = kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    internal_host, internal_port = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])[internal]
    assert internal_host == "kafka"
    bootstrap = environment(services["worker"])["HEALTHSCORE_KAFKA_BOOTSTRAP"]
    assert bootstrap == f"{internal_host}:{internal_port}"


def test_worker_reaches_redis_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    url = environment(services["worker"])["HEALTHSCORE_REDIS_URL"]
    assert re.fullmatch(r"redis://redis:6379/\d+", url), url


def test_worker_waits_for_healthy_kafka_and_redis(services: dict[str, dict[str, Any]]) -> None:
    deps = depends_on(services["worker"])
    for name in ("kafka", "redis"):
        assert deps.get(name, {}).get("condition") == "service_healthy", name
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "kafka-broker-api-versions.sh" in str(services["kafka"]["healthcheck"]["test"])
    assert "redis-cli" in str(services["redis"]["healthcheck"]["test"])
    assert "ping" in str(services["redis"]["healthcheck"]["test"])


def test_worker_service_shape(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker.get("build"), "the worker is built from the Dockerfile"
    assert worker.get("restart") == "unless-stopped"
    metrics_port = int(environment(worker)["HEALTHSCORE_METRICS_PORT"])
    assert metrics_port == 9464
    assert metrics_port in published_container_ports(worker)


def test_redis_persists_to_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    assert str(redis["image"]).split(":")[0] == "redis"
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    named = set(compose.get("volumes") or {})
    mounts = [
        (v["source"], v["target"]) if isinstance(v, dict) else tuple(str(v).split(":")[:2])
        for v in redis.get("volumes") or []
    ]
    assert any(source in named and target == "/data" for source, target in mounts)


def test_simulate_is_demo_only_and_shares_the_worker_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    simulate = services["simulate"]
    assert simulate.get("profiles") == ["demo"]
    assert simulate["command"][0] == "simulate"
    _parser().parse_args(simulate["command"])  # the options exist (exits on a bad one)
    assert environment(simulate) == environment(services["worker"])


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_from_python_slim() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "python:3.11-slim" in text
    builder = " ".join(args for stage in stages[:-1] for instr, args in stage if instr == "RUN")
    assert "pip wheel" in builder or "python -m build" in builder


def test_dockerfile_final_stage_runs_healthscore_as_non_root() -> None:
    final = dockerfile_stages()[-1]
    user = last_arg(final, "USER")
    assert user, "the final stage must set USER"
    name = user.split(":")[0]
    assert name not in ("root", "0")
    if name.isdigit():
        assert int(name) >= 1000

    entrypoint = last_arg(final, "ENTRYPOINT")
    assert entrypoint is not None
    assert json.loads(entrypoint) == ["healthscore"]
    cmd = last_arg(final, "CMD")
    assert cmd is not None
    assert json.loads(cmd) == ["worker"]

    exposed = last_arg(final, "EXPOSE")
    assert exposed is not None
    assert "9464" in exposed.split()


def test_dockerfile_installs_no_dev_extras() -> None:
    final = dockerfile_stages()[-1]
    installs = " ".join(args for instr, args in final if instr == "RUN")
    assert "pip install" in installs
    assert "[dev]" not in installs
    assert "[embedded]" not in installs
    env = " ".join(args for instr, args in final if instr == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_containers_serve_metrics_on_every_interface(
    services: dict[str, dict[str, Any]],
) -> None:
    # The setting's default is loopback, which nothing outside a container can scrape.
    assert Settings().metrics_host == "127.0.0.1"
    assert environment(services["worker"])["HEALTHSCORE_METRICS_HOST"] == "0.0.0.0"
    runtime = dockerfile_stages()[-1]
    env = " ".join(args for instruction, args in runtime if instruction == "ENV")
    assert re.search(r"\bHEALTHSCORE_METRICS_HOST=0\.0\.0\.0\b", env), env
