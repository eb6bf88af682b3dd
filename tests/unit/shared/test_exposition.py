# SPDX-License-Identifier: Apache-2.0
"""/metrics with exemplars (zg_shared.exposition): a histogram measurement made inside a span
is served in OpenMetrics with that span's trace and span ids on its bucket, parseable by
prometheus_client's OpenMetrics parser; the plain-text format is the OpenTelemetry
exporter's, byte for byte, without exemplars."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from tests.unit.deploy.common import OPENMETRICS, parse_exposition
from zg_gateway.metrics import GatewayMetrics
from zg_shared.exposition import ExemplarMetricReader, exposition
from zg_shared.health import add_health_routes

LABELS = {"service": "chat", "endpoint": "chat/completions"}
BUCKET = "zg_gateway_added_latency_seconds_bucket"


@dataclass
class Served:
    registry: CollectorRegistry
    metrics: GatewayMetrics
    tracer_provider: TracerProvider

    def in_span(self, seconds: float) -> SpanContext:
        """Records an added latency inside a (sampled) span; returns the span's context."""
        with self.tracer_provider.get_tracer("test").start_as_current_span("request") as span:
            self.metrics.added_latency.record(seconds, LABELS)
            return span.get_span_context()

    def buckets(self) -> dict[str, Sample]:
        """The histogram's bucket samples by `le`, from the OpenMetrics exposition."""
        body, content_type = exposition(self.registry, OPENMETRICS)
        assert content_type.startswith("application/openmetrics-text; version=1.0.0")
        return {
            sample.labels["le"]: sample
            for family in parse_exposition(body, content_type)
            for sample in family.samples
            if sample.name == BUCKET
        }


@pytest.fixture
def served() -> Iterator[Served]:
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[ExemplarMetricReader(registry)])
    yield Served(registry, GatewayMetrics(provider.get_meter("zg_gateway")), TracerProvider())
    provider.shutdown()


def linked(context: SpanContext) -> dict[str, str]:
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


def test_a_measurement_in_a_span_is_its_buckets_exemplar(served: Served) -> None:
    context = served.in_span(0.003)  # (0.002, 0.005]
    served.metrics.added_latency.record(0.3, LABELS)  # outside any span: no exemplar
    buckets = served.buckets()
    with_exemplar = {le: s.exemplar for le, s in buckets.items() if s.exemplar is not None}
    assert list(with_exemplar) == ["0.005"]
    exemplar = with_exemplar["0.005"]
    assert exemplar.labels == linked(context)  # nothing else: no attribute reaches Prometheus
    assert exemplar.value == 0.003
    assert exemplar.timestamp is not None
    assert buckets["0.005"].value == 1
    assert buckets["0.5"].value == buckets["+Inf"].value == 2


def test_a_bucket_keeps_its_latest_exemplar_across_scrapes(served: Served) -> None:
    first = served.in_span(0.003)
    assert served.buckets()["0.005"].exemplar.labels == linked(first)  # type: ignore[union-attr]
    # The SDK hands each exemplar over once; the next scrape still serves it.
    assert served.buckets()["0.005"].exemplar.labels == linked(first)  # type: ignore[union-attr]
    later = served.in_span(0.004)
    other = served.in_span(0.04)
    buckets = served.buckets()
    assert buckets["0.005"].exemplar.labels == linked(later)  # type: ignore[union-attr]
    assert buckets["0.05"].exemplar.labels == linked(other)  # type: ignore[union-attr]
    assert buckets["0.005"].value == 2


def test_plain_text_is_the_exporters_own_without_exemplars(served: Served) -> None:
    """What scrapers that do not ask for OpenMetrics get: exactly what the OpenTelemetry
    Prometheus exporter serves for the same measurements (so every name and label the
    dashboards and alerts use is unchanged)."""
    registry = CollectorRegistry()
    official = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    try:
        reference = GatewayMetrics(official.get_meter("zg_gateway"))
        for metrics in (served.metrics, reference):
            with served.tracer_provider.get_tracer("test").start_as_current_span("request"):
                metrics.added_latency.record(0.003, LABELS)
                metrics.requests.add(1, {**LABELS, "status": "200"})
        body, content_type = exposition(served.registry, "text/plain;version=0.0.4")
        expected, _ = exposition(registry, "text/plain;version=0.0.4")
    finally:
        official.shutdown()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert body == expected
    assert b"trace_id" not in body
    families = parse_exposition(body, content_type)
    assert any(f.name == "zg_gateway_added_latency_seconds" for f in families)


async def test_the_metrics_route_answers_each_scraper_in_its_format(served: Served) -> None:
    context = served.in_span(0.003)
    app = web.Application()
    add_health_routes(app, {}, served.registry)
    async with TestClient(TestServer(app)) as client:
        async with client.get("/metrics", headers={"Accept": OPENMETRICS}) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            openmetrics = await response.text()
        async with client.get("/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            plain = await response.text()
    assert openmetrics.endswith("# EOF\n")
    assert linked(context)["trace_id"] in openmetrics
    assert "trace_id" not in plain
