"""Static checks of docker-compose.yml and the Dockerfile (no Docker engine needed).

They hold the container setup to the worker's real configuration: every
``HEALTHSCORE_*`` name must be a setting, the stack must be KRaft-only, and
the worker must reach Kafka on the broker's internal listener.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
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
    assert str(metrics_port) in [str(port) for port in worker.get("expose") or []]


def test_worker_scales_without_clashes(services: dict[str, dict[str, Any]]) -> None:
    # `docker compose up --scale worker=N` refuses a fixed container name and
    # fails on the second replica binding the same host port.
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports"), "a host port can be bound by one replica only"
    assert "hostname" not in worker


def test_worker_healthcheck_is_its_readiness_probe(services: dict[str, dict[str, Any]]) -> None:
    test = services["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    port = environment(services["worker"])["HEALTHSCORE_METRICS_PORT"]
    assert test[1:3] == ["python", "-c"]
    assert f"http://127.0.0.1:{port}/readyz" in test[3]
    compile(test[3], "healthcheck", "exec")  # the probe is valid Python


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


# --------------------------------------------------------------------------- the whole stack


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = str(service.get("image", ""))
        assert image, f"{name}: no image"
        assert pinned(image), f"{name}: {image} is not pinned to a version"
        if not service.get("build"):  # pulled: a real release, not a floating major
            assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: {image}"


def test_api_serves_on_every_interface(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert api["command"] == ["api"]
    _parser().parse_args(api["command"])
    env = environment(api)
    assert env["HEALTHSCORE_API_HOST"] == "0.0.0.0"
    assert int(env["HEALTHSCORE_API_PORT"]) in published_container_ports(api)
    assert all(name.startswith(PREFIX) for name in env), sorted(env)
    assert "openapi.json" in str(api["healthcheck"]["test"])
    Settings.from_env({k: v for k, v in env.items() if "${" not in v})


def test_notify_is_a_profile_reading_the_webhook_from_a_secret(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
) -> None:
    notify = services["notify"]
    assert notify.get("profiles") == ["notify"]
    assert notify["command"] == ["notify", "slack"]
    _parser().parse_args(notify["command"])
    env = environment(notify)
    secret = notify["secrets"][0]
    secret_name = secret if isinstance(secret, str) else secret["source"]
    assert secret_name in compose["secrets"]
    # A secret without an explicit target is mounted at /run/secrets/<name>.
    assert env["HEALTHSCORE_SLACK_WEBHOOK_FILE"].endswith(f"-/run/secrets/{secret_name}}}")
    # The URL can come from the environment instead, never from the file itself.
    assert env["HEALTHSCORE_SLACK_WEBHOOK_URL"] == "${HEALTHSCORE_SLACK_WEBHOOK_URL:-}"


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's short-syntax volumes as {target: source}."""
    out: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        out[target] = source
    return out


def test_prometheus_and_grafana_mount_the_monitoring_files(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert prometheus["/etc/prometheus/rules.yml"] == "./deploy/prometheus/rules.yml"
    grafana = mounts(services["grafana"])
    provisioning = "/etc/grafana/provisioning"
    assert grafana[f"{provisioning}/datasources"] == "./deploy/grafana/provisioning/datasources"
    assert grafana[f"{provisioning}/dashboards"] == "./deploy/grafana/provisioning/dashboards"
    assert grafana[GRAFANA_DASHBOARDS] == "./deploy/grafana/dashboards"
    for service in ("prometheus", "grafana"):
        assert services[service]["healthcheck"]["test"], service
        assert all(p.startswith("127.0.0.1:") for p in services[service]["ports"]), service


GRAFANA_DASHBOARDS = "/var/lib/grafana/dashboards"


def strings(node: object) -> list[str]:
    """Every string value anywhere in a parsed YAML document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def test_the_monitoring_files_agree_with_the_mounts() -> None:
    """What the mounted files name (rule files, dashboard folder, scrape target,
    datasource URL) exists in the containers. They are written apart from this
    file; until they are there, there is nothing to compare."""
    deploy = ROOT / "deploy"
    prometheus_yml = deploy / "prometheus" / "prometheus.yml"
    provider_yml = deploy / "grafana" / "provisioning" / "dashboards" / "healthscore.yml"
    datasource_yml = deploy / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    if not (prometheus_yml.exists() and provider_yml.exists() and datasource_yml.exists()):
        pytest.skip("the Prometheus and Grafana files are not in this tree")
    prometheus = yaml.safe_load(prometheus_yml.read_text(encoding="utf-8"))
    for rule_file in prometheus.get("rule_files") or []:
        assert rule_file in ("/etc/prometheus/rules.yml", "rules.yml"), rule_file
    # Every replica: a static target or DNS discovery of the service name.
    names = set(strings(prometheus.get("scrape_configs")))
    assert names & {"worker:9464", "worker"}, "Prometheus does not scrape the workers"
    provider = yaml.safe_load(provider_yml.read_text(encoding="utf-8"))
    paths = {p["options"]["path"] for p in provider["providers"]}
    assert paths == {GRAFANA_DASHBOARDS}, paths
    datasources = yaml.safe_load(datasource_yml.read_text(encoding="utf-8"))
    urls = {d.get("url") for d in datasources["datasources"]}
    assert urls == {"http://prometheus:9090"}, urls


# --------------------------------------------------------------------------- the specification

# The Compose Specification's JSON schema as vendored by the check-jsonschema
# package (a dev dependency; check_jsonschema/builtin_schemas/vendor/compose-spec.json,
# the schema `docker compose` itself validates with), so no network at test time.
COMPOSE_SPEC = "compose-spec.json"


def compose_spec_schema() -> dict[str, Any]:
    # Found, not imported: the package's command-line half need not import beside the
    # click that faust-streaming pins.
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None, "check-jsonschema is missing"
    assert spec.submodule_search_locations
    vendor = Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor"
    schema = json.loads((vendor / COMPOSE_SPEC).read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    return schema  # type: ignore[no-any-return]


def compose_errors(data: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_spec_schema())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


def test_the_specification_check_catches_mistakes(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["healthcheck"]["interval"] = ["15s"]
    broken["services"]["api"]["restart_policy"] = "always"  # not a service key
    errors = "\n".join(compose_errors(broken))
    assert "services/worker/healthcheck/interval" in errors
    assert "'restart_policy' was unexpected" in errors
