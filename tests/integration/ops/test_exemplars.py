# SPDX-License-Identifier: Apache-2.0
"""From a latency panel to a trace, for real: the services serve their histograms as
OpenMetrics with exemplars (zg_shared.exposition), Debian's Prometheus stores them (the feature
flag docker-compose.yml gives it), and after a user's paid requests the exemplars on the
gateway's added-latency buckets are the trace and span ids of the gateway's HTTP spans for
those very requests, as the OTLP receiver got them. Every exemplar of every zgserve metric
names a span the services exported, and nothing else: no key, password or signature."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.ops.conftest import Observed, known_secrets, until_all_answer
from tests.integration.ops.otlp import ReceivedSpan
from tests.integration.polling import eventually
from tests.unit.deploy.common import DASHBOARDS, as_prometheus_sees_it
from zg_shared.exposition import SPAN_ID, TRACE_ID

pytestmark = pytest.mark.slow
LATENCY = "zg_gateway_added_latency_seconds_bucket"
Stored = list[tuple[dict[str, str], dict[str, Any]]]  # (series labels, exemplar)


async def stored(observed: Observed, promql: str) -> Stored:
    """Every exemplar Prometheus holds for the query's series."""
    series = await observed.prometheus.exemplars(promql)
    return [(s["seriesLabels"], e) for s in series for e in s["exemplars"]]


async def stored_eventually(observed: Observed, promql: str) -> Stored:
    found: Stored = []

    async def any_stored() -> bool:
        found[:] = await stored(observed, promql)
        return bool(found)

    await eventually(any_stored, within_s=60, what=f"an exemplar for {promql}")
    return found


def request_spans(observed: Observed) -> dict[str, ReceivedSpan]:
    """The gateway's HTTP spans of the user's requests, by span id."""
    return {
        s.span_id: s
        for s in observed.receiver.spans
        if s.kind == "SPAN_KIND_SERVER" and s.attributes.get("zg.user") == observed.traffic.user
    }


async def test_a_latency_exemplar_opens_the_trace_of_the_users_request(observed: Observed) -> None:
    found = await stored_eventually(observed, LATENCY)
    spans = request_spans(observed)
    receipts = {r.receipt_id for r in observed.traffic.records}
    for series, exemplar in found:
        assert series["job"] == "gateway"
        labels = exemplar["labels"]
        assert set(labels) == {TRACE_ID, SPAN_ID}
        span = spans.get(labels[SPAN_ID])
        assert span is not None, f"exemplar {labels} is no request of the user's"
        assert labels[TRACE_ID] == span.trace_id
        assert span.parent_span_id == ""  # the root of the trace Tempo opens
        assert span.attributes["zg.request_id"] in receipts
        # On the bucket its value falls in, as OpenMetrics requires.
        assert float(exemplar["value"]) <= float(series["le"])


def exemplar_queries() -> dict[str, str]:
    """Every dashboard query that shows exemplars, as Grafana sends it to query_exemplars."""
    queries = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                if target["exemplar"]:
                    where = f"{path.name}: {panel['title']}: {target['expr']}"
                    queries[where] = as_prometheus_sees_it(target["expr"])
    return queries


async def test_every_panel_that_shows_exemplars_gets_some(observed: Observed) -> None:
    queries = exemplar_queries()
    assert len(queries) >= 4

    async def exemplars(expr: str) -> Stored:
        return await stored(observed, expr)

    await until_all_answer(queries, exemplars, "exemplars")


async def test_every_exemplar_names_an_exported_span_and_holds_no_secret(
    observed: Observed,
) -> None:
    await stored_eventually(observed, LATENCY)
    found = await stored(observed, '{__name__=~"zg_.+"}')
    secrets = known_secrets(observed)
    for series, exemplar in found:
        labels = exemplar["labels"]
        assert set(labels) == {TRACE_ID, SPAN_ID}, series
        text = json.dumps(labels).lower()
        assert not [s[:8] for s in secrets if s in text], series
    linked = {(e["labels"][TRACE_ID], e["labels"][SPAN_ID]) for _, e in found}

    async def all_exported() -> bool:
        return linked <= {(s.trace_id, s.span_id) for s in observed.receiver.spans}

    await eventually(all_exported, within_s=30, what="a span for every exemplar")
