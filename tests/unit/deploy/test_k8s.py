# SPDX-License-Identifier: Apache-2.0
"""deploy/k8s: each overlay renders (with kubectl kustomize where installed, else the Python
renderer beside this file, and both agree), validates against the Kubernetes API schemas
offline (kubernetes-validate, strict), and has what operating it needs: probes, resources,
disruption budgets, autoscaling, GPU scheduling and no secret values."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.unit.deploy import kustomize
from tests.unit.deploy.common import K8S, OVERLAYS, rendered

KUBERNETES_VERSION = "1.30"
SERVICES = ("gateway", "billing", "prover", "chain-indexer")
PORTS = {"gateway": 3080, "billing": 9101, "prover": 9102, "chain-indexer": 9103}
# Where each serves /healthz, /readyz and /metrics: the gateway on an internal port of its own.
HEALTH_PORTS = {**PORTS, "gateway": 9100}
HEALTH_PORT_NAMES = {"gateway": "health"}
AUTOSCALED = {"gateway", "prover"}


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    docs = rendered(overlay)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_validation_catches_mistakes() -> None:
    doc = by_kind(rendered("dev"), "Deployment")["gateway"]
    doc["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_python_renderer_agrees_with_kubectl_kustomize(overlay: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    def key(doc: dict[str, Any]) -> tuple[str, str, str]:
        return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]

    theirs = {key(d): d for d in kustomize.load_all(out)}
    ours = {key(d): d for d in rendered(overlay)}
    assert ours.keys() == theirs.keys()
    for k, doc in ours.items():
        assert doc == theirs[k], k


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_have_probes_resources_and_run_unprivileged(overlay: str) -> None:
    deployments = by_kind(rendered(overlay), "Deployment")
    for name in SERVICES:
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = [c for c in pod["containers"] if c["name"] == name]
        port = next(p for p in container["ports"] if p["name"] == "http")
        assert port["containerPort"] == PORTS[name]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        probe_port = HEALTH_PORT_NAMES.get(name, "http")
        assert container["livenessProbe"]["httpGet"]["port"] == probe_port
        assert container["readinessProbe"]["httpGet"]["port"] == probe_port
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named[probe_port] == HEALTH_PORTS[name]
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(HEALTH_PORTS[name])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_a_disruption_budget_and_a_service(overlay: str) -> None:
    docs = rendered(overlay)
    budgets = by_kind(docs, "PodDisruptionBudget")
    services = by_kind(docs, "Service")
    for name in (*SERVICES, "nats", "redis"):
        workload = by_kind(docs, "Deployment").get(name) or by_kind(docs, "StatefulSet")[name]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_and_prover_autoscale(overlay: str) -> None:
    docs = rendered(overlay)
    autoscalers = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(autoscalers) == AUTOSCALED
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_gpu_overlay_schedules_the_cuda_prover_on_gpu_nodes() -> None:
    prover = by_kind(rendered("gpu"), "Deployment")["prover"]["spec"]["template"]["spec"]
    assert prover["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in prover["tolerations"])
    (container,) = prover["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].rsplit(":", 1)[0].endswith("/prover-cuda")
    cpu_prover = by_kind(rendered("prod"), "Deployment")["prover"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in cpu_prover
    assert "nvidia.com/gpu" not in cpu_prover["containers"][0]["resources"].get("limits", {})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_in_manifests(overlay: str) -> None:
    docs = rendered(overlay)
    assert not by_kind(docs, "Secret"), "Secrets are created outside the manifests"
    for doc in docs:
        spec = kustomize.pod_spec(doc)
        for container in spec["containers"] if spec else []:
            for item in container.get("env", []):
                if re.search(r"KEY|SECRET|PASSWORD|TOKEN", item["name"]):
                    assert "secretKeyRef" in item.get("valueFrom", {}), item["name"]
        for value in (doc.get("data") or {}).values():
            assert not re.search(r"0x[0-9a-fA-F]{64}", str(value)), "a private key in a ConfigMap"
    for path in K8S.rglob("*.yaml"):
        assert not re.search(r"0x[0-9a-fA-F]{64}", path.read_text()), path


def test_prod_images_are_pinned_and_from_a_registry() -> None:
    for doc in rendered("prod"):
        spec = kustomize.pod_spec(doc)
        for container in spec["containers"] if spec else []:
            image = container["image"]
            assert re.search(r":\d+\.\d+\.\d+(-[\w.]+)?$|@sha256:", image), image
            if "zgserve" in image:
                assert image.startswith("registry.example.com/zgserve/"), image
