"""Static checks of the Kubernetes manifests in deploy/k8s/ (no cluster needed).

Each object is validated against the strict JSON schema of its kind (unknown
fields refused) for the oldest and the newest Kubernetes release that the
kubernetes-validate package ships schemas of; then the objects are held to each
other (selectors, named ports, probes) and to the worker's settings.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from worker.cli import _parser
from worker.settings import PREFIX, Settings, documented_settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSIONS = [
    kubernetes_validate.utils.all_versions()[0],
    kubernetes_validate.utils.all_versions()[-1],
]

Obj = dict[str, Any]


def load_objects() -> list[Obj]:
    objects: list[Obj] = []
    for path in sorted(K8S.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]
    return objects


OBJECTS = load_objects()


def find(kind: str, name: str | None = None) -> list[Obj]:
    found = [
        o for o in OBJECTS if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert found, f"no {kind} {name or ''} in deploy/k8s/"
    return found


def ids() -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in OBJECTS]


def test_the_expected_objects_are_there() -> None:
    kinds = {(o["apiVersion"], o["kind"]) for o in OBJECTS}
    assert {
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("policy/v1", "PodDisruptionBudget"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
    } <= kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("obj", OBJECTS, ids=ids())
def test_each_object_follows_its_kubernetes_schema(obj: Obj, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_catches_mistakes() -> None:
    deployment = copy.deepcopy(find("Deployment", "healthscore-worker")[0])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["paht"] = "/readyz"  # a typo: unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    container = copy.deepcopy(find("Deployment", "healthscore-worker")[0])
    container["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(container, VERSIONS[-1], strict=True)


def settings_env() -> dict[str, str]:
    env = dict(find("ConfigMap", "healthscore")[0]["data"])
    env.update(find("Secret", "healthscore")[0]["stringData"])
    return env


def test_config_is_made_of_real_settings_that_validate() -> None:
    env = settings_env()
    known = {name for name, _default, _help in documented_settings()}
    assert set(env) <= known, sorted(set(env) - known)
    assert all(name.startswith(PREFIX) for name in env)
    settings = Settings.from_env(env)
    assert settings.metrics_host == "0.0.0.0", "the kubelet cannot probe loopback"
    assert settings.api_host == "0.0.0.0"


def pod(deployment: Obj) -> Obj:
    return deployment["spec"]["template"]  # type: ignore[no-any-return]


def container(deployment: Obj) -> Obj:
    (only,) = pod(deployment)["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def named_ports(deployment: Obj) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}


def test_worker_probes_liveness_and_readiness_on_the_metrics_port() -> None:
    worker = find("Deployment", "healthscore-worker")[0]
    main = container(worker)
    assert main["args"] == ["worker"]
    _parser().parse_args(main["args"])
    metrics_port = int(settings_env()["HEALTHSCORE_METRICS_PORT"])
    assert named_ports(worker)["metrics"] == metrics_port
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert {"name": "healthscore"} in [ref.get("configMapRef") for ref in main["envFrom"]]
    assert {"name": "healthscore"} in [ref.get("secretRef") for ref in main["envFrom"]]


def test_no_image_floats() -> None:
    for deployment in find("Deployment"):
        image = container(deployment)["image"]
        name, _, tag = image.rpartition(":")
        assert name, image
        assert tag not in ("", "latest"), image


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("service", find("Service"), ids=lambda s: s["metadata"]["name"])
def test_each_service_reaches_exactly_one_deployment_on_a_named_port(service: Obj) -> None:
    selector = service["spec"]["selector"]
    targets = [d for d in find("Deployment") if selects(selector, pod(d)["metadata"]["labels"])]
    assert len(targets) == 1, service["metadata"]["name"]
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in named_ports(targets[0])


def test_disruption_budget_covers_the_workers() -> None:
    (budget,) = find("PodDisruptionBudget")
    worker = find("Deployment", "healthscore-worker")[0]
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector == worker["spec"]["selector"]["matchLabels"]
    assert selects(selector, pod(worker)["metadata"]["labels"])
    assert budget["spec"].get("maxUnavailable") == 1
    assert worker["spec"]["replicas"] > 1
