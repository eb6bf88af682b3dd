# SPDX-License-Identifier: Apache-2.0
"""What a service's `/metrics` serves: the OpenTelemetry SDK's metrics as Prometheus text, or
as OpenMetrics text with exemplars when the scraper asks for it (`Accept:
application/openmetrics-text`, which Prometheus sends).

The SDK keeps, for each histogram bucket, the last measurement made inside a sampled span, with
that span's trace and span ids (its default `trace_based` exemplar filter). The OpenTelemetry
Prometheus exporter drops them; `ExemplarMetricReader` is that exporter with histograms
rendered here, each bucket carrying its exemplar (`trace_id`, `span_id`: nothing else, so no
attribute of a measurement ever reaches Prometheus). Every name, label and value is the
exporter's own: the exporter's translation serves everything but the exemplars. The
plain-text format has no exemplars.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from typing import Any

from opentelemetry.exporter.prometheus import _CustomCollector
from opentelemetry.exporter.prometheus._mapping import map_unit
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import Exemplar as SdkExemplar
from opentelemetry.sdk.metrics.export import AggregationTemporality, Metric, MetricReader
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.samples import Exemplar

CUMULATIVE = AggregationTemporality.CUMULATIVE
INSTRUMENTS = (
    Counter,
    UpDownCounter,
    Histogram,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
)
# The exemplar's labels: Grafana's Prometheus datasource opens `trace_id` in Tempo.
TRACE_ID, SPAN_ID = "trace_id", "span_id"
# (histogram family, label values of the point, bucket index)
BucketKey = tuple[str, tuple[str, ...], int]


def _exemplar(exemplar: SdkExemplar) -> Exemplar | None:
    if exemplar.trace_id is None or exemplar.span_id is None:
        return None  # not made inside a span: nothing to link to
    labels = {
        TRACE_ID: format(exemplar.trace_id, "032x"),
        SPAN_ID: format(exemplar.span_id, "016x"),
    }
    return Exemplar(labels, exemplar.value, exemplar.time_unix_nano / 1e9)


class _ExemplarCollector(_CustomCollector):
    """The exporter's collector, with histogram buckets that carry exemplars."""

    def __init__(self) -> None:
        super().__init__()
        # The SDK hands over each exemplar once (its reservoir empties at every collection);
        # a bucket keeps its latest, as prometheus_client's own histograms do, so every
        # scrape (and every Prometheus of an HA pair) sees it. Prometheus stores a repeated
        # exemplar once.
        self._kept: dict[BucketKey, Exemplar] = {}

    def _translate_metric(
        self,
        metric: Metric,
        scope_attrs: dict[str, Any],
        resource_attrs: dict[str, Any],
        metric_family_id_metric_family: dict[str, Any],
    ) -> None:
        if not isinstance(metric.data, HistogramData):
            super()._translate_metric(
                metric, scope_attrs, resource_attrs, metric_family_id_metric_family
            )
            return
        # As the exporter names and labels a histogram (its _populate_histogram_family).
        name = self._resolve_metric_name(metric.name)
        description = metric.description or ""
        unit = map_unit(metric.unit or "")
        keys, rows, _ = self._collect_data_points(metric.data, scope_attrs, resource_attrs)
        family_id = "|".join((name, description, unit, HistogramMetricFamily.__name__))
        family = metric_family_id_metric_family.get(family_id)
        if family is None:
            family = HistogramMetricFamily(name, description, labels=keys, unit=unit)
            metric_family_id_metric_family[family_id] = family
        for row, point in zip(rows, metric.data.data_points, strict=True):
            series = tuple(row)
            for sdk_exemplar in point.exemplars:
                exemplar = _exemplar(sdk_exemplar)
                if exemplar is not None:
                    # OpenTelemetry's buckets are (previous bound, bound]: bisect_left.
                    index = bisect_left(point.explicit_bounds, sdk_exemplar.value)
                    self._kept[(family_id, series, index)] = exemplar
            bounds = [f"{bound}" for bound in point.explicit_bounds] + ["+Inf"]
            buckets: list[Any] = []
            for index, (bound, count) in enumerate(
                zip(bounds, accumulate(point.bucket_counts), strict=True)
            ):
                kept = self._kept.get((family_id, series, index))
                buckets.append((bound, count) if kept is None else (bound, count, kept))
            family.add_metric(row, buckets=buckets, sum_value=point.sum)


class ExemplarMetricReader(MetricReader):
    """A pull reader like the exporter's PrometheusMetricReader (cumulative temporality, one
    collection per scrape, `target_info` and scope labels as it has them), registered in
    `registry`; render it with `exposition`."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(preferred_temporality=dict.fromkeys(INSTRUMENTS, CUMULATIVE))
        self._collector = _ExemplarCollector()
        # Each scrape collects from the SDK first (the exporter's hook, typed there as None).
        self._collector._callback = self.collect  # type: ignore[assignment]
        self._registry = registry
        registry.register(self._collector)

    def _receive_metrics(self, metrics_data: Any, timeout_millis: float = 10_000, **_: Any) -> None:
        if metrics_data is not None:
            self._collector.add_metrics_data(metrics_data)

    def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
        self._registry.unregister(self._collector)


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The body and Content-Type for a scrape with this Accept header: OpenMetrics (with
    exemplars) when asked for, else Prometheus text 0.0.4."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
