# SPDX-License-Identifier: Apache-2.0
"""Every environment variable compose and the Kubernetes manifests give a zgserve container is
one that container reads: its settings class's fields under its env prefix (found by
introspecting the class, never listed here), or the OpenTelemetry SDK's own. So is every secret
file mounted in its secrets folder (/run/secrets, zg_shared.settings). And the settings really
build from that environment and those files, so a required setting is never missing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from tests.unit.deploy import kustomize
from tests.unit.deploy.common import (
    DEPLOY_JOB_SCRIPT,
    OTEL_ENV,
    OVERLAYS,
    SERVICES,
    env_names,
    load_script,
    reads_otel,
    rendered,
    required_env,
    settings_class,
)
from tests.unit.deploy.compose import environment, load_compose
from zg_shared.busadmin import BusAdminSettings
from zg_shared.zk.circuit import CACHE_ENV

# A placeholder for Secret values: not one of anvil's public keys, so production accepts it.
SECRET_PLACEHOLDER = "0x" + "11" * 32
DEPLOY_JOB = "deploy-contracts"
SECRETS_JOB = "secrets-init"
SECRETS_JOB_SCRIPT = DEPLOY_JOB_SCRIPT.with_name("make_secrets.py")
SECRETS_DIR = "/run/secrets"
ZK_KEYS_JOB = "zk-dev-keys"  # scripts/zk_setup.py reads only where its cache is
BUS_ADMIN_JOB = "bus-admin"  # zg_shared.busadmin: creates the streams


def allowed_env(container: str) -> set[str]:
    if container in {DEPLOY_JOB, "deploy"}:
        return set(load_script(DEPLOY_JOB_SCRIPT).ENV_VARS)
    if container == ZK_KEYS_JOB:
        return {CACHE_ENV}
    if container == SECRETS_JOB:
        return set(load_script(SECRETS_JOB_SCRIPT).ENV_VARS)
    if container == BUS_ADMIN_JOB:
        return env_names(BusAdminSettings)
    cls = settings_class(container)
    if cls is None:
        pytest.skip(f"{SERVICES[container][0]} does not exist yet")
    return env_names(cls) | (OTEL_ENV if reads_otel(cls) else set())


def build_settings(cls: type[BaseSettings], env: dict[str, str], mp: pytest.MonkeyPatch) -> None:
    prefix = str(cls.model_config.get("env_prefix", ""))
    for name in env_names(cls):
        mp.delenv(name, raising=False)
    for name, value in env.items():
        if name.startswith(prefix):
            mp.setenv(name, value)
    cls()


# ------------------------------------------------------------------ compose


def compose_services() -> list[str]:
    compose = load_compose()
    return [
        name
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("zgserve/") and "environment" in service
    ]


def compose_secret_files(name: str) -> dict[str, str]:
    """The files the secrets job writes into the folder compose mounts at /run/secrets."""
    mounts = load_compose()["services"][name].get("volumes", [])
    folders = [
        m["volume"]["subpath"]
        for m in mounts
        if isinstance(m, dict) and m.get("source") == "secrets" and m["target"] == SECRETS_DIR
    ]
    by_service: dict[str, tuple[str, ...]] = load_script(SECRETS_JOB_SCRIPT).SECRETS_BY_SERVICE
    return {f: SECRET_PLACEHOLDER for folder in folders for f in by_service[folder]}


@pytest.mark.parametrize("name", compose_services())
def test_compose_environment_is_read_by_the_service(name: str) -> None:
    env = environment(load_compose()["services"][name]) | compose_secret_files(name)
    unknown = {k for k in env if k.upper() not in allowed_env(name)}
    assert not unknown, f"compose sets {sorted(unknown)} on {name}, which reads none of them"


@pytest.mark.parametrize("name", sorted(n for n in compose_services() if n in SERVICES))
def test_compose_environment_builds_the_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(name)
    if cls is None:
        pytest.skip(f"{SERVICES[name][0]} does not exist yet")
    env = environment(load_compose()["services"][name]) | compose_secret_files(name)
    assert required_env(cls) <= {k.upper() for k in env}
    build_settings(cls, env, monkeypatch)


def test_every_compose_service_of_ours_is_checked() -> None:
    checked = set(compose_services())
    assert {"gateway", "billing", "prover", "chain-indexer", "sample-backend", DEPLOY_JOB} <= (
        checked
    )
    assert BUS_ADMIN_JOB in checked


def test_the_stream_admin_job_builds_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(load_compose()["services"][BUS_ADMIN_JOB])
    env |= compose_secret_files(BUS_ADMIN_JOB)
    build_settings(BusAdminSettings, env, monkeypatch)
    assert (
        env["BUS_ADMIN_SERVING_ADDRESS"]
        == environment(load_compose()["services"]["gateway"])["GATEWAY_SERVING_ADDRESS"]
    )


def test_compose_interpolation_overrides_keys() -> None:
    from tests.unit.deploy.compose import load_compose as load

    key = "0x" + "22" * 32
    job = load({"GATEWAY_RECEIPT_PRIVATE_KEY": key})["services"][SECRETS_JOB]
    assert environment(job)["GATEWAY_RECEIPT_PRIVATE_KEY"] == key


# ------------------------------------------------------------------ Kubernetes


def containers(overlay: str) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[Any]]]:
    docs = rendered(overlay)
    for doc in docs:
        spec = kustomize.pod_spec(doc)
        if spec is None:
            continue
        for container in spec["containers"]:
            if "zgserve/" not in container["image"]:
                continue  # NATS, Redis, the NATS exporter: not ours
            yield doc, container, docs


def secret_files(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The files of the Secrets projected into the container's /run/secrets, as placeholders."""
    spec = kustomize.pod_spec(pod)
    assert spec is not None
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        if mount["mountPath"] != SECRETS_DIR:
            continue
        for source in volumes[mount["name"]]["projected"]["sources"]:
            for item in source["secret"]["items"]:
                files[item["path"]] = SECRET_PLACEHOLDER
    return files


def container_env(
    container: dict[str, Any], docs: list[Any], pod: dict[str, Any] | None = None
) -> dict[str, str]:
    """What the container's environment holds: envFrom ConfigMaps, then env entries (values,
    ConfigMap keys resolved, Secret keys as placeholders), and with `pod` the secret files."""
    configmaps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "only ConfigMaps are loaded whole; Secrets by key"
        env.update(configmaps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = str(configmaps[ref["name"]][ref["key"]])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = SECRET_PLACEHOLDER
        else:
            env[item["name"]] = "from the downward API"
    return env | (secret_files(pod, container) if pod is not None else {})


def k8s_cases() -> list[tuple[str, str]]:
    return sorted({(overlay, c["name"]) for overlay in OVERLAYS for _, c, _ in containers(overlay)})


@pytest.mark.parametrize(("overlay", "name"), k8s_cases())
def test_k8s_environment_is_read_by_the_service(overlay: str, name: str) -> None:
    for pod, container, docs in containers(overlay):
        if container["name"] != name:
            continue
        env = container_env(container, docs, pod)
        unknown = {k for k in env if k.upper() not in allowed_env(name)}
        assert not unknown, f"{overlay}: {name} gets {sorted(unknown)}, which it never reads"


@pytest.mark.parametrize(("overlay", "name"), [c for c in k8s_cases() if c[1] in SERVICES])
def test_k8s_environment_builds_the_settings(
    overlay: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(name)
    if cls is None:
        pytest.skip(f"{SERVICES[name][0]} does not exist yet")
    for pod, container, docs in containers(overlay):
        if container["name"] == name:
            env = container_env(container, docs, pod)
            assert required_env(cls) <= {k.upper() for k in env}
            build_settings(cls, env, monkeypatch)


def test_k8s_covers_every_service() -> None:
    for overlay in OVERLAYS:
        names = {c["name"] for _, c, _ in containers(overlay)}
        assert {"gateway", "billing", "prover", "chain-indexer"} <= names
