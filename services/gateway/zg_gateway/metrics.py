# SPDX-License-Identifier: Apache-2.0
"""The gateway's metrics (OpenTelemetry instruments, exported on /metrics)."""

from __future__ import annotations

from opentelemetry.metrics import Meter

LATENCY_BUCKETS_S = (
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


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
            # Sub-millisecond to seconds: the default buckets start at 5 (seconds).
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
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
        # Present at 0 from the start: the first voided request shows as an increase.
        self.voided.add(0)
