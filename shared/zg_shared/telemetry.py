# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry traces and metrics, and JSON logs, set up the same way in every service.

Traces go to an OTLP/HTTP collector when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable is set, and nowhere otherwise. Metrics are
always collected and served on the service's `/metrics`, in Prometheus format or as OpenMetrics
whose histogram buckets carry exemplars (the trace of a measurement: zg_shared.exposition).
Tests pass their own span exporter (`InMemorySpanExporter`) instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from prometheus_client import REGISTRY, CollectorRegistry

from zg_shared.exposition import ExemplarMetricReader
from zg_shared.redaction import redact_log


@dataclass(frozen=True)
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry

    def tracer(self, name: str) -> trace.Tracer:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str) -> metrics.Meter:
        return self.meter_provider.get_meter(name)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_installed: Telemetry | None = None


def setup_telemetry(service_name: str, span_exporter: SpanExporter | None = None) -> Telemetry:
    """Builds the providers once per process and installs them as OpenTelemetry's globals,
    which faststream's and aiohttp's instrumentation use. Later calls return the first."""
    global _installed
    if _installed is not None:
        return _installed
    resource = Resource.create({SERVICE_NAME: service_name})
    tracer_provider = TracerProvider(resource=resource)
    if span_exporter is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # The SDK's default exemplar filter (trace_based, OTEL_METRICS_EXEMPLAR_FILTER) keeps the
    # span of measurements made inside sampled spans: the link from a latency panel to a trace.
    meter_provider = MeterProvider(resource=resource, metric_readers=[ExemplarMetricReader()])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _installed = Telemetry(tracer_provider, meter_provider, REGISTRY)
    return _installed


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the active trace and span ids for log-trace joins."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_log(record.getMessage()),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key.startswith("zg_"):
                entry[key[3:]] = value
        if record.exc_info:
            entry["exception"] = redact_log(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class RedactingFormatter(logging.Formatter):
    """Plain lines, with URLs cut to their origin and credentials hidden (zg_shared.redaction)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_log(super().format(record))


def setup_logging(level: str = "INFO", as_json: bool = True) -> None:
    """Fields passed as `extra={"zg_user": ...}` appear in the JSON as `user`."""
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
