# SPDX-License-Identifier: Apache-2.0
"""Secrets in compose and Kubernetes: files, never environment variables, each container only
its own; the provider's wallet and the gateway's receipt key two separate Secrets; Redis with
the repository's one ACL source, each service logging in as its own user."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount

from tests.unit.deploy import kustomize
from tests.unit.deploy.common import DEPLOY_JOB_SCRIPT, OVERLAYS, REPO, load_script, rendered
from tests.unit.deploy.compose import environment, load_compose
from zg_shared.natsauth import AUTH_CONF, configured_users, password_variable
from zg_shared.natsauth import SERVICE_USERS as NATS_SERVICE_USERS
from zg_shared.natsauth import USERS as NATS_USERS
from zg_shared.redisacl import (
    ACL_DIR,
    ACL_TEMPLATE,
    REPLICATION_ACL,
    SERVICE_USERS,
    users_with_login,
)

MAKE_SECRETS = DEPLOY_JOB_SCRIPT.with_name("make_secrets.py")
PREFIX = {"gateway": "GATEWAY_", "billing": "BILLING_", "chain-indexer": "INDEXER_"}
SERVICES = ("gateway", "billing", "chain-indexer", "prover")
# The sentinels' user for the services (deploy/k8s/base/redis/sentinel.acl).
SENTINEL_CLIENT = "sentinel-client"


def pod(overlay: str, name: str) -> dict[str, Any]:
    for doc in rendered(overlay):
        if doc["metadata"]["name"] == name and kustomize.pod_spec(doc) is not None:
            return doc
    raise AssertionError(f"{overlay}: no workload {name}")


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    spec = kustomize.pod_spec(doc)
    assert spec is not None
    return next(c for c in spec["containers"] if c["name"] == name)


def referenced_secrets(doc: dict[str, Any]) -> set[str]:
    spec = kustomize.pod_spec(doc)
    assert spec is not None
    names = set()
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    for c in spec["containers"] + spec.get("initContainers", []):
        for item in c.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
    return names


def secret_items(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """File name under /run/secrets -> (Secret, key)."""
    spec = kustomize.pod_spec(doc)
    assert spec is not None
    items = {}
    for volume in spec.get("volumes", []):
        for source in volume.get("projected", {}).get("sources", []):
            for item in source["secret"]["items"]:
                items[item["path"]] = (source["secret"]["name"], item["key"])
    return items


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_services_take_no_secret_from_the_environment(overlay: str, name: str) -> None:
    for item in container(pod(overlay, name), name).get("env", []):
        assert "secretKeyRef" not in item.get("valueFrom", {}), f"{name}: {item['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_never_holds_the_providers_wallet(overlay: str) -> None:
    gateway = referenced_secrets(pod(overlay, "gateway"))
    billing = referenced_secrets(pod(overlay, "billing"))
    assert "zgserve-provider-wallet" not in gateway
    assert "zgserve-receipt-key" in gateway
    assert "zgserve-receipt-key" not in billing
    assert "zgserve-provider-wallet" in billing
    assert secret_items(pod(overlay, "gateway"))["GATEWAY_RECEIPT_PRIVATE_KEY"] == (
        "zgserve-receipt-key",
        "private-key",
    )
    for name in ("chain-indexer", "prover"):
        assert not {"zgserve-provider-wallet", "zgserve-receipt-key"} & referenced_secrets(
            pod(overlay, name)
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", sorted(SERVICE_USERS))
def test_each_service_logs_in_to_redis_as_its_own_user(overlay: str, name: str) -> None:
    docs = rendered(overlay)
    doc = pod(overlay, name)
    configmaps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    env: dict[str, str] = {}
    for source in container(doc, name).get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    prefix = PREFIX[name]
    assert env[f"{prefix}REDIS_USERNAME"] == SERVICE_USERS[name]
    assert secret_items(doc)[f"{prefix}REDIS_PASSWORD"] == (
        "zgserve-redis-users",
        SERVICE_USERS[name],
    )
    # The sentinels as the user that can only ask them (redis/sentinel.acl).
    assert env[f"{prefix}REDIS_SENTINEL_USERNAME"] == SENTINEL_CLIENT
    assert secret_items(doc)[f"{prefix}REDIS_SENTINEL_PASSWORD"] == (
        "zgserve-redis-users",
        SENTINEL_CLIENT,
    )
    # Only its own passwords: no other user's key of the Secret.
    keys = {key for secret, key in secret_items(doc).values() if secret == "zgserve-redis-users"}
    assert keys == {SERVICE_USERS[name], SENTINEL_CLIENT}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_loads_the_repositorys_acl_source(overlay: str) -> None:
    docs = rendered(overlay)
    acl = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "redis-acl")
    assert acl["data"]["users.acl"] == ACL_TEMPLATE.read_text()
    assert acl["data"]["replication.acl"] == REPLICATION_ACL.read_text()
    for script in ("sentinel.acl", "render-acl.sh", "configure.sh"):
        assert acl["data"][script] == (ACL_DIR / script).read_text()
    redis = pod(overlay, "redis")
    spec = kustomize.pod_spec(redis)
    assert spec is not None
    server = container(redis, "redis")
    assert server["args"][server["args"].index("--aclfile") + 1] == "/conf/users.acl"
    init = spec["initContainers"][0]
    assert "configure.sh" in " ".join(init["command"])
    assert referenced_secrets(redis) == {"zgserve-redis-users"}


def test_the_acl_source_names_every_service_and_no_anonymous_user() -> None:
    template = ACL_TEMPLATE.read_text()
    assert set(users_with_login(template)) == {"admin", *SERVICE_USERS.values()}
    assert "user default off" in template.splitlines()


# ------------------------------------------------------------------ compose


def test_compose_mounts_each_container_only_its_own_secrets() -> None:
    compose = load_compose()
    by_service = load_script(MAKE_SECRETS).SECRETS_BY_SERVICE
    for name, service in compose["services"].items():
        mounts = [
            m
            for m in service.get("volumes", [])
            if isinstance(m, dict) and m["source"] == "secrets"
        ]
        for mount in mounts:
            assert mount["read_only"] is True, name
            folder = mount["volume"]["subpath"]
            assert folder == ("redis" if name == "redis" else name), name
        if name in PREFIX:
            assert len(mounts) == 1, name
            files = by_service[name]
            assert all(f.startswith(PREFIX[name]) for f in files), name
            env = environment(service)
            assert env[f"{PREFIX[name]}REDIS_USERNAME"] == SERVICE_USERS[name]
            assert not any("PRIVATE_KEY" in k for k in env), f"{name}: a key in its environment"
    assert "BILLING_PROVIDER_PRIVATE_KEY" not in by_service["gateway"]


def test_compose_gives_the_gateway_a_receipt_key_of_its_own() -> None:
    compose = load_compose()
    job = environment(compose["services"]["secrets-init"])
    receipt = EthAccount.from_key(job["GATEWAY_RECEIPT_PRIVATE_KEY"]).address
    provider = EthAccount.from_key(job["BILLING_PROVIDER_PRIVATE_KEY"]).address
    assert receipt != provider
    deploy = environment(compose["services"]["deploy-contracts"])
    assert deploy["ZG_RECEIPT_SIGNER_ADDRESS"] == receipt
    assert EthAccount.from_key(deploy["ZG_PROVIDER_PRIVATE_KEY"]).address == provider


def test_the_secrets_job_keeps_redis_passwords_and_rewrites_keys(tmp_path: Path) -> None:
    make = load_script(MAKE_SECRETS)
    env = {"GATEWAY_RECEIPT_PRIVATE_KEY": "0x" + "22" * 32, "BILLING_PROVIDER_PRIVATE_KEY": "0x1"}
    make.make(tmp_path, env, None)
    gateway_password = (tmp_path / "gateway" / "GATEWAY_REDIS_PASSWORD").read_text()
    assert gateway_password == (tmp_path / "redis" / "gateway").read_text()
    assert len(gateway_password) >= 32
    assert gateway_password != (tmp_path / "redis" / "billing").read_text()
    make.make(tmp_path, {**env, "GATEWAY_RECEIPT_PRIVATE_KEY": "0x" + "33" * 32}, None)
    assert (tmp_path / "gateway" / "GATEWAY_REDIS_PASSWORD").read_text() == gateway_password
    assert (tmp_path / "gateway" / "GATEWAY_RECEIPT_PRIVATE_KEY").read_text() == "0x" + "33" * 32
    assert sorted(p.name for p in (tmp_path / "gateway").iterdir()) == sorted(
        make.SECRETS_BY_SERVICE["gateway"]
    )
    assert (tmp_path / "gateway" / "GATEWAY_RECEIPT_PRIVATE_KEY").stat().st_mode & 0o077 == 0


def test_the_secrets_job_makes_grafana_a_password_and_keeps_it(tmp_path: Path) -> None:
    make = load_script(MAKE_SECRETS)
    env = {"GATEWAY_RECEIPT_PRIVATE_KEY": "0x" + "22" * 32, "BILLING_PROVIDER_PRIVATE_KEY": "0x1"}
    make.make(tmp_path, env, None)
    path = tmp_path / "grafana" / "admin-password"
    made = path.read_text()
    assert len(made) >= 20
    assert made != "admin"
    make.make(tmp_path, env, None)
    assert path.read_text() == made
    make.make(tmp_path, {**env, "GRAFANA_ADMIN_PASSWORD": "chosen-by-operator"}, None)
    assert path.read_text() == "chosen-by-operator"
    assert path.stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------ NATS users (issue 12 item 2)
NATS_PREFIX = {**PREFIX, "prover": "PROVER_"}


def config_map_data(overlay: str, name: str) -> dict[str, str]:
    docs = rendered(overlay)
    found = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)
    data: dict[str, str] = found["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", sorted(NATS_SERVICE_USERS))
def test_each_service_logs_in_to_nats_as_its_own_user(overlay: str, name: str) -> None:
    doc = pod(overlay, name)
    env: dict[str, str] = {}
    for source in container(doc, name).get("envFrom", []):
        env.update(config_map_data(overlay, source["configMapRef"]["name"]))
    prefix = NATS_PREFIX[name]
    assert env[f"{prefix}NATS_USERNAME"] == NATS_SERVICE_USERS[name]
    assert secret_items(doc)[f"{prefix}NATS_PASSWORD"] == ("zgserve-nats-users", name)
    keys = {key for secret, key in secret_items(doc).values() if secret == "zgserve-nats-users"}
    assert keys == {NATS_SERVICE_USERS[name]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_loads_the_repositorys_users_and_keeps_monitoring_inside(overlay: str) -> None:
    assert config_map_data(overlay, "nats-auth")["auth.conf"] == AUTH_CONF.read_text()
    nats_conf = config_map_data(overlay, "nats-config")["nats.conf"]
    assert "include auth.conf" in [line.strip() for line in nats_conf.splitlines()]
    assert "no_auth_user" not in nats_conf
    nats = pod(overlay, "nats")
    server = container(nats, "nats")
    variables = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in server["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    # Every user's password, and the routes' (the servers' login to each other).
    assert variables == {
        password_variable(u): {"name": "zgserve-nats-users", "key": u}
        for u in (*NATS_USERS, "route")
    }
    spec = kustomize.pod_spec(nats)
    assert spec is not None
    [config] = [v for v in spec["volumes"] if v["name"] == "config"]
    sources = {s["configMap"]["name"] for s in config["projected"]["sources"]}
    assert sources == {"nats-config", "nats-auth", "nats-tls"}
    service = next(
        d for d in rendered(overlay) if d["kind"] == "Service" and d["metadata"]["name"] == "nats"
    )
    assert [p["port"] for p in service["spec"]["ports"]] == [4222]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_job_makes_the_streams_as_natss_admin(overlay: str) -> None:
    job = pod(overlay, "bus-admin")
    assert job["kind"] == "Job"
    step = container(job, "bus-admin")
    assert step["command"][-2:] == ["zg_shared.busadmin", "create-streams"]
    assert secret_items(job) == {"BUS_ADMIN_NATS_PASSWORD": ("zgserve-nats-users", "admin")}


def test_auth_conf_declares_every_user_and_no_anonymous_one() -> None:
    conf = "\n".join(
        line for line in AUTH_CONF.read_text().splitlines() if not line.strip().startswith("#")
    )
    assert configured_users(conf) == {u: password_variable(u) for u in NATS_USERS}
    assert "no_auth_user" not in conf
    # No service may touch a stream itself: only the admin has no permissions block.
    assert "$JS.API.STREAM.CREATE" not in conf
    assert "$JS.API.STREAM.UPDATE" not in conf
    assert "$JS.API.STREAM.PURGE" not in conf
    assert "$JS.API.STREAM.DELETE" not in conf
    assert "$JS.API.>" not in conf


def test_the_secrets_job_gives_each_container_its_own_nats_password(tmp_path: Path) -> None:
    make = load_script(MAKE_SECRETS)
    env = {"GATEWAY_RECEIPT_PRIVATE_KEY": "0x" + "22" * 32, "BILLING_PROVIDER_PRIVATE_KEY": "0x1"}
    make.make(tmp_path, env, None)
    nats = {u: (tmp_path / "nats" / u).read_text() for u in NATS_USERS}
    assert len(set(nats.values())) == len(NATS_USERS)
    for name, prefix in NATS_PREFIX.items():
        assert (tmp_path / name / f"{prefix}NATS_PASSWORD").read_text() == nats[name]
    assert (tmp_path / "bus-admin" / "BUS_ADMIN_NATS_PASSWORD").read_text() == nats["admin"]
    make.make(tmp_path, env, None)
    assert (tmp_path / "nats" / "gateway").read_text() == nats["gateway"]


def _event_subjects() -> set[str]:
    import zg_shared.events as events

    found = set()
    for value in vars(events).values():
        subject = getattr(value, "SUBJECT", None)
        if isinstance(value, type) and isinstance(subject, str):
            found.add(subject)
    return found


def test_auth_conf_lets_exactly_one_service_publish_each_event() -> None:
    """A new event gets its publisher's permission in the same change, or the service's
    publishes are refused on a real deployment."""
    conf = AUTH_CONF.read_text()
    subjects = _event_subjects()
    assert len(subjects) >= 13
    for subject in subjects:
        assert conf.count(f'"{subject}"') == 1, f"{subject}: not exactly one publisher"


def test_auth_conf_names_every_durable_consumer_of_billing_and_the_prover() -> None:
    """billing's subscribers (handlers.py: `@consumer(EventModel, STREAM, "name", batch)`)
    and the prover's pool consumer, each with the API subjects a pull subscriber uses."""
    conf = AUTH_CONF.read_text()
    handlers = (REPO / "services" / "billing" / "zg_billing" / "handlers.py").read_text()
    pairs = re.findall(r"@consumer\(\w+,\s*(\w+)_STREAM,\s*\"([\w-]+)\"", handlers)
    assert len(pairs) >= 7
    consumers = [(f"ZG_{stream}", f"billing-{name}") for stream, name in pairs]
    consumers.append(("ZG_SERVING", "prover"))
    # Each pull subscriber takes its service's inbox (the only one its user may hear).
    for service in ("billing", "prover"):
        source = (REPO / "services" / service / f"zg_{service}" / "handlers.py").read_text()
        assert source.count("pull_sub=") == source.count("inbox_prefix=inbox_prefix"), service
    for stream, name in consumers:
        for api in ("INFO", "MSG.NEXT"):
            assert f'"$JS.API.CONSUMER.{api}.{stream}.{name}"' in conf, (api, stream, name)
        assert f'"$JS.ACK.{stream}.{name}.>"' in conf, (stream, name)
        # Created only with its own filter subject: never filterless, `.>` or DURABLE.CREATE.
        [create] = re.findall(rf'"\$JS\.API\.CONSUMER\.CREATE\.{stream}\.{name}\.([\w.]+)"', conf)
        assert create.startswith(("serving.", "chain.")), (stream, name, create)
    assert '"$JS.API.CONSUMER.DURABLE' not in conf
    assert not re.search(r'"\$JS\.API\.CONSUMER\.CREATE\.[\w.-]*>"', conf)
