# SPDX-License-Identifier: Apache-2.0
"""deploy/k8s network policies (issue 12 item 6): in each overlay's build, every pod is denied
everything but DNS, every workload is selected by exactly one policy of its own, each flow
inside the namespace is allowed at both ends, and the flows are the table in
docs/operations.md ("Network policies")."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from tests.unit.deploy.common import OVERLAYS, REPO, rendered

Doc = dict[str, Any]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
NAME = "app.kubernetes.io/name"
ROLE = "zgserve.dev/role"
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
MONITORING = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
Flow = tuple[str, str, str]  # from, to, ports ("443, 8545")


def workloads(docs: list[Doc]) -> dict[str, dict[str, str]]:
    """Workload name -> its pods' labels."""
    found = {}
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        spec = doc["spec"]
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        found[doc["metadata"]["name"]] = spec["template"].get("metadata", {}).get("labels", {})
    return found


def policies(docs: list[Doc]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"selector this test cannot read: {selector}"
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def peer_name(peer: Doc) -> str:
    """A policy peer by the name docs/operations.md gives it."""
    if "ipBlock" in peer:
        assert peer == {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE}}, peer
        return "outside"
    if peer == DNS_PEER:
        return "dns"
    if peer == {"namespaceSelector": MONITORING}:
        return "monitoring"
    if peer == {"namespaceSelector": {}, "podSelector": {"matchLabels": {NAME: "otel-collector"}}}:
        return "otel-collector"
    assert set(peer) == {"podSelector"}, f"a peer the table has no name for: {peer}"
    labels = peer["podSelector"]["matchLabels"]
    if set(labels) == {NAME}:
        return str(labels[NAME])
    assert set(labels) == {ROLE}, peer
    return f"role: {labels[ROLE]}"


def ports(rule: Doc) -> str:
    numbers = [str(p["port"]) for p in rule["ports"]]
    return ", ".join(dict.fromkeys(numbers))


def flows(docs: list[Doc]) -> list[Flow]:
    found: list[Flow] = []
    for name, policy in policies(docs).items():
        spec = policy["spec"]
        target = "every pod" if name == "default-deny" else spec["podSelector"]["matchLabels"][NAME]
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", [{"anyone": True}]):
                source = "anyone" if "anyone" in peer else peer_name(peer)
                found.append((source, target, ports(rule)))
        for rule in spec.get("egress", []):
            found += [(target, peer_name(peer), ports(rule)) for peer in rule["to"]]
    return found


def documented(overlay: str) -> list[Flow]:
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split("#### Network policies", 1)[1]
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$", section, re.MULTILINE)
    table = [r for r in rows if r[0] not in {"from", "---"}]
    assert table, "docs/operations.md has no network policy table"
    return [
        (source, target, port)
        for source, target, port, where in table
        if where == "all" or overlay in where.split(", ")
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_denied_everything_but_dns(overlay: str) -> None:
    deny = policies(rendered(overlay))["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny
    assert deny["egress"] == [
        {"to": [DNS_PEER], "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]}
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_selected_by_exactly_one_policy(overlay: str) -> None:
    docs = rendered(overlay)
    own = {n: p for n, p in policies(docs).items() if n != "default-deny"}
    pods = workloads(docs)
    assert pods
    for name, labels in pods.items():
        selecting = [n for n, p in own.items() if selects(p["spec"]["podSelector"], labels)]
        assert selecting == [name], f"{overlay}: {name} is selected by {selecting}"
    for name, policy in own.items():
        # Each one denies what it does not allow in both directions, even on its own.
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], name
        assert name in pods, f"{overlay}: policy {name} selects no workload"


def one_ended(docs: list[Doc]) -> list[str]:
    """Flows inside the namespace that one end's policy allows and the other's does not."""
    pods = workloads(docs)
    specs = {n: p["spec"] for n, p in policies(docs).items() if n != "default-deny"}

    def allows(spec: Doc, direction: str, peer_labels: dict[str, str], port: int) -> bool:
        key = "from" if direction == "ingress" else "to"
        return any(
            port in [p["port"] for p in rule["ports"]]
            and any(
                set(peer) == {"podSelector"} and selects(peer["podSelector"], peer_labels)
                for peer in rule.get(key, [])
            )
            for rule in spec.get(direction, [])
        )

    missing = []
    for name, spec in specs.items():
        for direction, key, other in (("egress", "to", "ingress"), ("ingress", "from", "egress")):
            for rule in spec.get(direction, []):
                # Peers outside the namespace have no policy of ours at their end.
                peers = [p for p in rule.get(key, []) if set(p) == {"podSelector"}]
                for peer, (workload, labels) in itertools.product(peers, pods.items()):
                    if not selects(peer["podSelector"], labels):
                        continue
                    missing += [
                        f"{name} {direction} {key} {workload}:{p['port']}"
                        for p in rule["ports"]
                        if not allows(specs[workload], other, pods[name], p["port"])
                    ]
    return missing


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flows_inside_the_namespace_are_allowed_at_both_ends(overlay: str) -> None:
    assert one_ended(rendered(overlay)) == []


def test_a_flow_allowed_at_one_end_only_is_seen() -> None:
    docs = rendered("dev")  # a copy of its own
    redis = policies(docs)["redis"]["spec"]
    redis["ingress"][0]["from"] = redis["ingress"][0]["from"][:1]  # the gateway only
    assert one_ended(docs) == [
        "billing egress to redis:6379",
        "billing egress to redis:26379",
        "chain-indexer egress to redis:6379",
        "chain-indexer egress to redis:26379",
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_flows_are_the_documented_table(overlay: str) -> None:
    table = documented(overlay)
    assert len(table) == len(set(table)), "a flow is listed twice in docs/operations.md"
    derived = flows(rendered(overlay))
    assert sorted(set(derived)) == sorted(table)
