# SPDX-License-Identifier: Apache-2.0
"""deploy/k8s deploys what the replication drills ran (issue 16): NATS as a 3-node JetStream
cluster whose routes name every server and log in, the streams at 3 replicas, clients on TLS
in prod; Redis with a sentinel beside each of 3 servers, the services asking them for the same
primary name the sentinels watch; disruption budgets that leave a quorum and select real pods;
anti-affinity; and every NetworkPolicy port one that a container listens on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.deploy import kustomize
from tests.unit.deploy.common import OVERLAYS, rendered

Doc = dict[str, Any]
NAME = "app.kubernetes.io/name"
SERVICE_PREFIXES = {
    "gateway": "GATEWAY_",
    "billing": "BILLING_",
    "prover": "PROVER_",
    "chain-indexer": "INDEXER_",
}
REDIS_CLIENTS = ("gateway", "billing", "chain-indexer")
# A value Kubernetes expands in an env var: $(NAME) of an earlier one.
K8S_VAR = re.compile(r"\$\((\w+)\)")


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(doc: Doc, name: str) -> Doc:
    spec = kustomize.pod_spec(doc)
    assert spec is not None
    everyone: list[Doc] = [*spec["containers"], *spec.get("initContainers", [])]
    [found] = [c for c in everyone if c["name"] == name]
    return found


def plain_env(item: Doc, env: dict[str, str]) -> str:
    """An env var's value as the container sees it: Kubernetes's $(VAR) expansion applied."""
    return K8S_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))


def container_env(docs: list[Doc], doc: Doc, name: str) -> dict[str, str]:
    """A container's env from its ConfigMaps and plain values (secrets and field refs left
    as `secret:NAME/KEY` and `field:PATH`)."""
    c = container(doc, name)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = plain_env(item, env)
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = f"secret:{ref['name']}/{ref['key']}"
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = f"field:{item['valueFrom']['fieldRef']['fieldPath']}"
        else:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = find(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
    return env


def service_env(docs: list[Doc], name: str) -> dict[str, str]:
    """A service's settings without its prefix."""
    prefix = SERVICE_PREFIXES[name]
    env = container_env(docs, find(docs, "Deployment", name), name)
    return {k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix)}


def pod_names(docs: list[Doc], statefulset: str) -> list[str]:
    """Each pod's stable name in its StatefulSet's Service: `name-N.service`."""
    sts = find(docs, "StatefulSet", statefulset)
    service = sts["spec"]["serviceName"]
    return [f"{statefulset}-{i}.{service}" for i in range(sts["spec"]["replicas"])]


def nats_conf_lines(conf: str) -> Iterator[tuple[list[str], str]]:
    """nats.conf's lines (comments dropped) that open or close no block, each with the path of
    the blocks it is in."""
    path: list[str] = []
    for raw in conf.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.endswith("{"):
            path.append(line[:-1].strip())
        elif line == "}":
            path.pop()
        elif line:
            yield path, line


def nats_conf_values(conf: str) -> dict[str, str]:
    """`key: value` lines of nats.conf by dotted block path (cluster.port, ...)."""
    found: dict[str, str] = {}
    for path, line in nats_conf_lines(conf):
        if ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            found[".".join([*path, key])] = value
    return found


def nats_conf_includes(conf: str) -> dict[str, list[str]]:
    """The files nats.conf includes, by dotted block path ("" at the top)."""
    found: dict[str, list[str]] = {}
    for path, line in nats_conf_lines(conf):
        if line.startswith("include "):
            found.setdefault(".".join(path), []).append(line.removeprefix("include ").strip())
    return found


# ------------------------------------------------------------------ NATS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_is_a_three_node_cluster_whose_routes_name_every_server_and_log_in(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    sts = find(docs, "StatefulSet", "nats")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    conf = nats_conf_values(find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"])
    assert conf["cluster.port"] == "6222"
    assert conf["cluster.no_advertise"] == "true"
    assert conf["jetstream.store_dir"] == "/data"
    user = conf["cluster.authorization.user"]
    password_var = conf["cluster.authorization.password"].removeprefix("$")
    env = container_env(docs, sts, "nats")
    assert env[password_var] == "secret:zgserve-nats-users/route"
    route_vars = re.findall(r"\$(\w+)", conf["cluster.routes"])
    routes = [env[v] for v in route_vars]
    password = env[password_var]
    assert routes == [f"nats://{user}:{password}@{name}:6222" for name in pod_names(docs, "nats")]
    # Each server's name resolves before it is ready: the routes form while it starts.
    headless = find(docs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["spec"]["ports"]} == {4222, 6222}
    # The data on a volume of each server's own.
    [claim] = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(sts, "nats")["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == conf["jetstream.store_dir"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_every_nats_server_and_three_stream_replicas(overlay: str) -> None:
    docs = rendered(overlay)
    scheme = "tls" if overlay != "dev" else "nats"
    servers = [f"{scheme}://{name}:4222" for name in pod_names(docs, "nats")]
    job = container_env(docs, find(docs, "Job", "bus-admin"), "bus-admin")
    admin = {k.removeprefix("BUS_ADMIN_"): v for k, v in job.items()}
    for name, env in [*((n, service_env(docs, n)) for n in SERVICE_PREFIXES), ("bus-admin", admin)]:
        assert env["NATS_URL"].split(",") == servers, name
        assert env["NATS_STREAM_REPLICAS"] == "3", name


def nats_secret_file(docs: list[dict[str, Any]], path: str) -> tuple[str, str]:
    """The Secret and key that the nats container finds at `path`."""
    nats = find(docs, "StatefulSet", "nats")
    spec = kustomize.pod_spec(nats)
    assert spec is not None
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(nats, "nats")["volumeMounts"]}
    folder, _, file = path.rpartition("/")
    secret = volumes[mounts[folder]]["secret"]
    [key] = [item["key"] for item in secret["items"] if item["path"] == file]
    return secret["secretName"], key


@pytest.mark.parametrize("overlay", ["prod", "gpu"])
def test_prod_nats_clients_use_tls_with_the_ca_of_the_servers_certificate(overlay: str) -> None:
    docs = rendered(overlay)
    tls = nats_conf_values(find(docs, "ConfigMap", "nats-tls")["data"]["tls.conf"])
    assert nats_secret_file(docs, tls["tls.cert_file"]) == ("zgserve-nats-tls", "tls.crt")
    assert nats_secret_file(docs, tls["tls.key_file"]) == ("zgserve-nats-tls", "tls.key")
    clients = [(find(docs, "Deployment", n), n, SERVICE_PREFIXES[n]) for n in SERVICE_PREFIXES]
    clients.append((find(docs, "Job", "bus-admin"), "bus-admin", "BUS_ADMIN_"))
    for doc, name, prefix in clients:
        env = container_env(docs, doc, name)
        assert all(url.startswith("tls://") for url in env[f"{prefix}NATS_URL"].split(","))
        folder, _, file = env[f"{prefix}NATS_CA_FILE"].rpartition("/")
        pod = kustomize.pod_spec(doc)
        assert pod is not None
        [mount] = [m for m in container(doc, name)["volumeMounts"] if m["mountPath"] == folder]
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        # Only the CA: never the server's key.
        assert volume["secret"] == {
            "secretName": "zgserve-nats-tls",
            "items": [{"key": "ca.crt", "path": file}],
        }, name


@pytest.mark.parametrize("overlay", ["prod", "gpu"])
def test_prod_nats_routes_use_tls_checking_each_others_certificate(overlay: str) -> None:
    """The same certificate as the clients' (its names are the route URLs' too), and the CA
    that every route's certificate must come from (test_k8s_nats_cluster.py runs it)."""
    docs = rendered(overlay)
    nats_conf = find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "cluster-tls.conf" in nats_conf_includes(nats_conf)["cluster"]
    routes = nats_conf_values(find(docs, "ConfigMap", "nats-tls")["data"]["cluster-tls.conf"])
    assert routes["tls.verify"] == "true"
    assert nats_secret_file(docs, routes["tls.cert_file"]) == ("zgserve-nats-tls", "tls.crt")
    assert nats_secret_file(docs, routes["tls.key_file"]) == ("zgserve-nats-tls", "tls.key")
    assert nats_secret_file(docs, routes["tls.ca_file"]) == ("zgserve-nats-tls", "ca.crt")


def test_dev_nats_has_no_tls_block() -> None:
    docs = rendered("dev")
    nats_conf = find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "cluster-tls.conf" in nats_conf_includes(nats_conf)["cluster"]
    tls = find(docs, "ConfigMap", "nats-tls")["data"]
    assert set(tls) == {"tls.conf", "cluster-tls.conf"}
    assert all(nats_conf_values(conf) == {} for conf in tls.values())


# ------------------------------------------------------------------ Redis with Sentinel


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_sentinels_and_services_agree_on_the_topology(overlay: str) -> None:
    docs = rendered(overlay)
    sts = find(docs, "StatefulSet", "redis")
    assert sts["spec"]["replicas"] == 3
    pods = pod_names(docs, "redis")
    init = container_env(docs, sts, "configure")
    assert init["ZG_REDIS_SERVERS"].split() == pods
    # Its own name among them: the pod's name (redis-N) in the Service.
    assert init["ZG_REDIS_ME"] == f"field:metadata.name.{sts['spec']['serviceName']}"
    # A majority of the sentinels must agree the primary is down.
    assert int(init["ZG_REDIS_QUORUM"]) == len(pods) // 2 + 1 == 2
    ports = {c["name"]: [p["containerPort"] for p in c["ports"]] for c in container_list(sts)}
    assert ports == {"redis": [6379], "sentinel": [26379]}
    for name in REDIS_CLIENTS:
        env = service_env(docs, name)
        assert env["REDIS_MASTER_NAME"] == init["ZG_REDIS_MASTER_NAME"], name
        assert env["REDIS_SENTINELS"].split(",") == [f"{p}:26379" for p in pods], name
        assert env["REDIS_SENTINEL_USERNAME"] == "sentinel-client", name
    assert service_env(docs, "gateway")["REDIS_WAIT_REPLICAS"] == "1"
    service = find(docs, "Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert {p["port"] for p in service["spec"]["ports"]} == {6379, 26379}


def container_list(doc: Doc) -> list[Doc]:
    spec = kustomize.pod_spec(doc)
    assert spec is not None
    containers: list[Doc] = spec["containers"]
    return containers


# ------------------------------------------------------------------ budgets and spreading


def workloads(docs: list[Doc]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_budget_selects_pods_and_lets_a_drain_proceed(overlay: str) -> None:
    docs = rendered(overlay)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert {b["metadata"]["name"] for b in budgets} >= {"nats", "redis", "billing", "gateway"}
    for budget in budgets:
        wanted = budget["spec"]["selector"]["matchLabels"]
        selected = [
            w
            for w in workloads(docs).values()
            if wanted.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, budget["metadata"]["name"]
        minimum = budget["spec"].get("minAvailable")
        if minimum is not None:
            # Lower than the replicas, or no node could ever be drained.
            assert minimum < selected[0]["spec"].get("replicas", 1), budget["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_quorum_budgets(overlay: str) -> None:
    docs = rendered(overlay)
    budgets = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert budgets["nats"]["minAvailable"] == 2
    assert budgets["redis"]["minAvailable"] == 2
    assert budgets["billing"]["minAvailable"] == 1


def anti_affinity(doc: Doc) -> Doc:
    spec = kustomize.pod_spec(doc)
    assert spec is not None
    rules: Doc = spec["affinity"]["podAntiAffinity"]
    return rules


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_spread_over_nodes(overlay: str) -> None:
    docs = rendered(overlay)
    by_name = workloads(docs)
    required = overlay != "dev"
    for name in ("nats", "redis", "billing", "gateway"):
        doc = by_name[name]
        own = {NAME: name}
        rules = anti_affinity(doc)
        if required and name != "gateway":
            assert set(rules) == {"requiredDuringSchedulingIgnoredDuringExecution"}, name
            [term] = rules["requiredDuringSchedulingIgnoredDuringExecution"]
        else:
            assert set(rules) == {"preferredDuringSchedulingIgnoredDuringExecution"}, name
            [weighted] = rules["preferredDuringSchedulingIgnoredDuringExecution"]
            term = weighted["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname", name
        assert term["labelSelector"]["matchLabels"] == own, name
        assert own.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    if required:
        # The gateway autoscales past the node count: spread evenly rather than one per node.
        spec = kustomize.pod_spec(by_name["gateway"])
        assert spec is not None
        [hostname] = [
            c
            for c in spec["topologySpreadConstraints"]
            if c["topologyKey"] == "kubernetes.io/hostname"
        ]
        assert hostname["whenUnsatisfiable"] == "DoNotSchedule"
        assert hostname["labelSelector"]["matchLabels"] == {NAME: "gateway"}


# ------------------------------------------------------------------ network policy ports


def pods_selected(docs: list[Doc], selector: Doc) -> list[Doc]:
    wanted = selector.get("matchLabels", {})
    found = []
    for doc in docs:
        spec = kustomize.pod_spec(doc)
        if (
            spec is not None
            and wanted.items() <= doc["spec"]["template"]["metadata"].get("labels", {}).items()
        ):
            found.append(doc)
    return found


def listening(doc: Doc) -> set[int]:
    spec = kustomize.pod_spec(doc)
    assert spec is not None
    return {p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_network_policy_port_is_a_container_port(overlay: str) -> None:
    """Ingress ports are ports the policy's own pods listen on; egress ports to pods of the
    namespace are ports those pods listen on (peers elsewhere are not in these manifests)."""
    docs = rendered(overlay)
    checked = 0
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        name = policy["metadata"]["name"]
        spec = policy["spec"]
        own = pods_selected(docs, spec["podSelector"]) if spec["podSelector"] else []
        for rule in spec.get("ingress", []):
            for port in (p["port"] for p in rule["ports"]):
                assert own, name
                assert all(port in listening(pod) for pod in own), (name, port)
                checked += 1
        for rule in spec.get("egress", []):
            for peer in rule["to"]:
                if set(peer) != {"podSelector"}:
                    continue
                targets = pods_selected(docs, peer["podSelector"])
                for port in (p["port"] for p in rule["ports"]):
                    assert all(port in listening(pod) for pod in targets), (name, peer, port)
                    checked += 1
    assert checked > 20
