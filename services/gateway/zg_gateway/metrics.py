"""The gateway's metrics (OpenTelemetry instruments, exported on /metrics)."""

from __future__ import annotations

from opentelemetry.metrics import Meter


class GatewayMetrics:
    def __init__(self, meter: Meter) -> None:
        self.requests = meter.create_counter(
            "zg_gateway_requests",
            unit="{request}",
            description="Requests by service, endpoint and status",
        )
        self.added_latency = meter.create_histogram(
            "zg_gateway_added_latency_seconds",
            unit="s",
            description="Time the gateway adds to a request: everything but the backend's own time",
        )
        self.reserved = meter.create_counter(
            "zg_gateway_reserved_wei", unit="wei", description="Output fees reserved at admission"
        )
        self.charged = meter.create_counter(
            "zg_gateway_charged_wei",
            unit="wei",
            description="Fees charged: signed fee plus output fee",
        )
        self.voided = meter.create_counter(
            "zg_gateway_voided", unit="{request}", description="Admitted requests charged nothing"
        )
