# SPDX-License-Identifier: Apache-2.0
"""docker-compose.yml: valid against the Compose Specification, complete, and pinned. Offline:
no Docker engine is needed (the schema is the one check-jsonschema vendors)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from typing import Any

import jsonschema
import pytest

from tests.unit.deploy.common import REPO
from tests.unit.deploy.compose import load_compose
from zg_shared.natsauth import USERS as NATS_USERS

DOCKERFILE = REPO / "Dockerfile"
OUR_SERVICES = {"gateway", "billing", "prover", "chain-indexer", "sample-backend"}
INFRA = {
    "nats",
    "nats-exporter",
    "redis",
    "anvil",
    "otel-collector",
    "tempo",
    "prometheus",
    "grafana",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    schema: dict[str, Any] = json.loads((vendored / "compose-spec.json").read_text())
    return schema


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def _compose_cli() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_cli(), reason="no `docker compose` plugin (the schema check runs)")
def test_docker_compose_config_accepts_the_file() -> None:
    """Where the Compose CLI plugin is installed (no engine needed), it parses the file too."""
    subprocess.run(
        ["docker", "compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        check=True,
        timeout=60,
        cwd=REPO,
    )


def test_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    """The schema check is not vacuous: a misspelt key fails it."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["enviroment"] = {"X": "1"}
    schema = compose_schema()
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_the_whole_stack_is_there(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    assert OUR_SERVICES | INFRA | {"deploy-contracts"} <= services
    assert "nats-data" in compose["volumes"]
    assert "redis-data" in compose["volumes"]
    nats = compose["services"]["nats"]
    assert "--jetstream" in " ".join(nats["entrypoint"])
    assert "nats-data:/data" in nats["volumes"]
    redis = compose["services"]["redis"]
    assert "--appendonly yes" in " ".join(redis["entrypoint"])
    assert "--aclfile" in " ".join(redis["entrypoint"])
    assert "redis-data:/data" in redis["volumes"]
    deploy = compose["services"]["deploy-contracts"]
    assert deploy["restart"] == "no"


def test_dependencies_exist_and_services_wait_for_the_contracts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert set(deps) <= set(services), name
    for name in ("gateway", "billing", "chain-indexer"):
        condition = services[name]["depends_on"]["deploy-contracts"]["condition"]
        assert condition == "service_completed_successfully"


def test_build_targets_exist_in_the_dockerfile(compose: dict[str, Any]) -> None:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), re.M | re.I))
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if image.startswith("zgserve/"):
            continue  # built here
        assert re.search(r":(v?\d+\.\d+\.\d+)(-[\w.]+)?$|@sha256:", image), (
            f"{name}: {image} is not pinned to an exact version"
        )


def test_mounted_config_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} is missing"


def test_prometheus_scrapes_every_service_on_the_port_it_listens_on(
    compose: dict[str, Any],
) -> None:
    from tests.unit.deploy.common import DEPLOY, load_yaml

    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    ports = {"gateway": "GATEWAY", "billing": "BILLING", "prover": "PROVER"}
    ports["chain-indexer"] = "INDEXER"
    for service, prefix in ports.items():
        environment = compose["services"][service]["environment"]
        # The gateway's health and metrics are on an internal port of their own.
        port = environment.get(f"{prefix}_HEALTH_PORT") or environment[f"{prefix}_HTTP_PORT"]
        assert targets[service] == f"{service}:{port}"
        assert compose["services"][service]["environment"][f"{prefix}_HTTP_HOST"] == "0.0.0.0"


# ------------------------------------------------------------------ exposure (issue 12 item 7)
# What may listen on every interface of the host: the gateway, the provider's public endpoint.
PUBLIC_PORTS = {"gateway": {"3080"}}


def _published(port: str | dict[str, Any]) -> tuple[str, str]:
    """(host address, host port) of a `ports` entry; address "" means every interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port.get("published", ""))
    parts = str(port).split(":")
    if len(parts) == 3:
        return parts[0], parts[1]
    return "", parts[0]


def test_only_the_gateway_listens_on_every_interface(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for entry in service.get("ports", []):
            address, port = _published(entry)
            if port in PUBLIC_PORTS.get(name, set()):
                continue
            assert address == "127.0.0.1", f"{name}: {entry} is published on every interface"


def test_unauthenticated_internals_are_not_published(compose: dict[str, Any]) -> None:
    """NATS's monitoring port lists every client; the sample backend serves without payment;
    Tempo's API takes no credentials: none has a host port at all."""
    services = compose["services"]
    assert [_published(p)[1] for p in services["nats"]["ports"]] == ["4222"]
    assert "ports" not in services["sample-backend"]
    assert "ports" not in services["tempo"]


def test_prometheus_has_no_lifecycle_endpoint(compose: dict[str, Any]) -> None:
    """--web.enable-lifecycle lets anyone who reaches :9090 shut Prometheus down."""
    command = compose["services"]["prometheus"]["command"]
    assert not any("lifecycle" in arg for arg in command)
    assert not any("admin-api" in arg for arg in command)


def test_grafana_has_no_default_password_and_no_anonymous_access(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/admin-password"
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "false") == "false"
    mounts = [m for m in grafana["volumes"] if isinstance(m, dict) and m["source"] == "secrets"]
    assert [m["volume"]["subpath"] for m in mounts] == ["grafana"]
    assert grafana["depends_on"]["secrets-init"]["condition"] == "service_completed_successfully"


def test_nats_loads_the_repositorys_users_and_the_admin_step_makes_the_streams(
    compose: dict[str, Any],
) -> None:
    """NATS runs with deploy/k8s/base/nats/auth.conf (nobody anonymous) and its passwords from
    the secrets volume; the services start after the admin step that creates the streams."""
    services = compose["services"]
    nats = services["nats"]
    command = " ".join(nats["entrypoint"])
    assert "--config /etc/zgserve/nats/auth.conf" in command
    assert "./deploy/k8s/base/nats:/etc/zgserve/nats:ro" in nats["volumes"]
    for user in NATS_USERS:
        assert user in command
    for name in ("gateway", "billing", "prover", "chain-indexer"):
        assert services[name]["depends_on"]["bus-admin"]["condition"] == (
            "service_completed_successfully"
        )
        prefix = {"chain-indexer": "INDEXER"}.get(name, name.upper())
        assert services[name]["environment"][f"{prefix}_NATS_USERNAME"] == name
    admin = services["bus-admin"]
    assert admin["command"][-1] == "create-streams"
    assert admin["depends_on"]["deploy-contracts"]["condition"] == "service_completed_successfully"
