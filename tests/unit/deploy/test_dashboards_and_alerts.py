# SPDX-License-Identifier: Apache-2.0
"""Grafana dashboards and Prometheus alert rules query only metrics the services export."""

from __future__ import annotations

import json

import pytest

from tests.unit.deploy.common import (
    ALERTS,
    DASHBOARDS,
    DEPLOY,
    METRIC_PREFIXES,
    SERVICES,
    alert_exprs,
    all_exprs,
    dashboard_exprs,
    exported_metric_names,
    load_script,
    load_yaml,
    promql_metric_names,
)
from zg_shared.exposition import TRACE_ID

# Series Prometheus makes itself, not a service.
PROMETHEUS_BUILTINS = {"up"}
# What each dashboard must show (issue 7): a metric family of the service per item.
REQUIRED = {
    "gateway": [
        "zg_gateway_requests_total",
        "zg_gateway_added_latency_seconds_sum",
        "zg_gateway_reserved_wei_total",
        "zg_gateway_charged_wei_total",
    ],
    "prover": [
        "zg_prover_queue_pending",
        "zg_prover_in_flight",
        "zg_prover_settlement_seconds_bucket",
    ],
    "chain-indexer": ["zg_indexer_head_lag_blocks", "zg_indexer_reorgs_total"],
    "billing": [
        "zg_billing_unsettled_fee_wei",
        "zg_billing_settlement_lag_seconds_bucket",
        "zg_billing_batch_requests_bucket",
        "zg_billing_gas_per_request_sum",
        "zg_billing_retries_total",
    ],
}


def service_of(metric: str) -> str | None:
    return next((s for p, s in METRIC_PREFIXES.items() if metric.startswith(p)), None)


def test_every_query_names_a_known_service_or_builtin() -> None:
    for where, expr in all_exprs():
        for metric in promql_metric_names(expr):
            assert service_of(metric) or metric in PROMETHEUS_BUILTINS, (
                f"{where}: {metric} belongs to no zgserve service"
            )


@pytest.mark.parametrize("service", sorted(set(METRIC_PREFIXES.values())))
def test_queried_metrics_are_exported(service: str) -> None:
    wanted = {
        (metric, where)
        for where, expr in all_exprs()
        for metric in promql_metric_names(expr)
        if service_of(metric) == service
    }
    exported = exported_metric_names(service)
    if exported is None:
        pytest.skip(f"{SERVICES[service][1]} does not exist yet: {len(wanted)} queries unchecked")
    missing = sorted(f"{where}: {metric}" for metric, where in wanted if metric not in exported)
    assert not missing, f"not exported by {service} (it exports {sorted(exported)}): {missing}"


@pytest.mark.parametrize("service", sorted(REQUIRED))
def test_dashboard_shows_what_operators_need(service: str) -> None:
    path = DASHBOARDS / f"{service}.json"
    shown = {m for _, expr in dashboard_exprs(path) for m in promql_metric_names(expr)}
    assert not set(REQUIRED[service]) - shown


def test_dashboards_are_generated_from_the_builder() -> None:
    builder = load_script(DEPLOY / "grafana" / "build_dashboards.py")
    assert builder.main(["--check"]) == 0, "run deploy/grafana/build_dashboards.py"


def test_dashboards_use_the_provisioned_datasource() -> None:
    provisioned = load_yaml(
        DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    seen_uids = set()
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"]
        assert board["title"]
        for panel in board["panels"]:
            seen_uids.add(panel["datasource"]["uid"])
            for target in panel["targets"]:
                seen_uids.add(target["datasource"]["uid"])
    assert seen_uids <= uids
    assert "tempo" in uids


def test_histogram_panels_show_exemplars_that_open_their_trace_in_tempo() -> None:
    provisioned = load_yaml(
        DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    )
    datasources = {d["uid"]: d for d in provisioned["datasources"]}
    assert datasources["tempo"]["type"] == "tempo"
    assert datasources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": TRACE_ID, "datasourceUid": "tempo"}  # the label the services' exemplars carry
    ]
    shown = set()
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                over_buckets = "_bucket[" in target["expr"]
                assert target["exemplar"] is over_buckets, (path.name, panel["title"])
                if over_buckets:
                    shown |= promql_metric_names(target["expr"])
    assert "zg_gateway_added_latency_seconds_bucket" in shown


def test_alert_rules_are_well_formed_and_documented() -> None:
    operations = (DEPLOY.parent / "docs" / "operations.md").read_text().lower()
    names = [name for name, _ in alert_exprs()]
    assert len(names) == len(set(names))
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}
            assert rule["annotations"]["summary"]
            anchor = rule["annotations"]["runbook"].split("#")[1]
            assert anchor == rule["alert"].lower()
            assert f"### {rule['alert'].lower()}" in operations, (
                f"docs/operations.md has no section for {rule['alert']}"
            )


def test_promql_parser() -> None:
    expr = (
        'sum by (le, backend) (rate(a_bucket{status=~"5.."}[$__rate_interval])) '
        "/ on (job) group_left sum without (x) (b_total) > 1e18 and up == 0"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b_total", "up"}
    with pytest.raises(ValueError, match="parenthesis"):
        promql_metric_names("sum(rate(a_total[5m])")
