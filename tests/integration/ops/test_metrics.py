# SPDX-License-Identifier: Apache-2.0
"""Metrics and alerts for real: Debian's Prometheus scrapes the running services with the
repository's scrape config and alert rules. After a user's paid requests are settled on
chain, every target is up, every metric a dashboard or an alert names has samples, every
dashboard panel's query returns data, and a healthy network fires no alert."""

from __future__ import annotations

import json

import pytest

from tests.integration.ops.conftest import Observed, until_all_answer
from tests.integration.polling import eventually
from tests.unit.deploy.common import (
    ALERTS,
    DASHBOARDS,
    all_exprs,
    as_prometheus_sees_it,
    dashboard_exprs,
    load_yaml,
    promql_metric_names,
)

pytestmark = pytest.mark.slow


async def test_every_scrape_target_is_up(observed: Observed) -> None:
    jobs = {job["job_name"] for job in observed.scrape_config["scrape_configs"]}  # type: ignore[attr-defined]
    assert {"gateway", "billing", "prover", "chain-indexer", "prometheus"} <= jobs

    async def all_up() -> bool:
        targets = (await observed.prometheus.api("targets"))["activeTargets"]
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        return up == jobs and len(targets) == len(jobs)

    await eventually(all_up, within_s=60, what="every scrape target up")
    samples = await observed.prometheus.query("up")
    assert {s["metric"]["job"]: s["value"][1] for s in samples} == dict.fromkeys(jobs, "1")


async def test_every_metric_the_dashboards_and_alerts_use_has_samples(observed: Observed) -> None:
    wanted = {name for _, expr in all_exprs() for name in promql_metric_names(expr)}
    assert len(wanted) > 30
    queries = {name: f'count({{__name__="{name}"}})' for name in wanted}
    await until_all_answer(queries, observed.prometheus.query, "samples")


async def test_every_dashboard_panel_returns_data(observed: Observed) -> None:
    queries = {
        f"{path.name}: {title}: {expr}": as_prometheus_sees_it(expr)
        for path in sorted(DASHBOARDS.glob("*.json"))
        for title, expr in dashboard_exprs(path)
    }
    assert len({json.loads(p.read_text())["uid"] for p in DASHBOARDS.glob("*.json")}) == 4
    await until_all_answer(queries, observed.prometheus.query, "samples")


async def test_the_alert_rules_load_and_a_healthy_network_fires_none(observed: Observed) -> None:
    groups = (await observed.prometheus.api("rules"))["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    defined = {rule["alert"] for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]}
    assert set(loaded) == defined
    for name, rule in loaded.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
    active = await observed.prometheus.api("alerts")
    assert active["alerts"] == []
