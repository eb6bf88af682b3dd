# SPDX-License-Identifier: Apache-2.0
"""Billing's metrics (OpenTelemetry instruments, exported on /metrics)."""

from __future__ import annotations

from opentelemetry.metrics import Meter

# Up to a day: the refund lock time bounds how late a settlement may be.
LAG_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
GAS_BUCKETS = (
    1_000.0,
    2_000.0,
    5_000.0,
    10_000.0,
    20_000.0,
    50_000.0,
    100_000.0,
    200_000.0,
    500_000.0,
)
BATCH_BUCKETS = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)


class BillingMetrics:
    def __init__(self, meter: Meter) -> None:
        self._recorded = meter.create_counter(
            "zg_billing_requests_recorded",
            unit="{request}",
            description="Served-request events taken into the book, by outcome",
        )
        self._unsettled_fee = meter.create_gauge(
            "zg_billing_unsettled_fee",
            unit="wei",
            description="Fees served and not yet settled, over all accounts",
        )
        self._unsettled_requests = meter.create_gauge(
            "zg_billing_unsettled_requests",
            unit="{request}",
            description="Charged requests not yet settled, over all accounts",
        )
        self._settlements = meter.create_counter(
            "zg_billing_settlements",
            unit="{settlement}",
            description="Settlements by outcome: requested, submitted, confirmed, failed",
        )
        self._lag = meter.create_histogram(
            "zg_billing_settlement_lag_seconds",
            unit="s",
            description="From the oldest request served to its settlement confirmed",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS_S,
        )
        self._batch = meter.create_histogram(
            "zg_billing_batch_requests",
            unit="{request}",
            description="Requests per settlement transaction",
            explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
        )
        self._gas = meter.create_histogram(
            "zg_billing_gas_per_request",
            unit="{gas}",
            description="settleFees gas divided by the requests it settled",
            explicit_bucket_boundaries_advisory=GAS_BUCKETS,
        )
        self._retries = meter.create_counter(
            "zg_billing_retries",
            unit="{retry}",
            description="Settlement retries, by reason",
        )
        self._written_off = meter.create_counter(
            "zg_billing_written_off_requests",
            unit="{request}",
            description="Requests that can never be settled (reported in settlement.failed)",
        )
        self._refused = meter.create_counter(
            "zg_billing_events_refused",
            unit="{event}",
            description="Bus events refused as untrue (not on chain, not the settlement's, "
            "not signed by the gateway), by subject",
        )
        # Counters of faults are present at 0 from the start: a panel shows 0, not "no data",
        # and the first fault shows as an increase (a counter born at 1 increases by nothing).
        self._retries.add(0)
        self._written_off.add(0)
        self._refused.add(0)

    def recorded(self, outcome: str) -> None:
        self._recorded.add(1, {"outcome": outcome})

    def unsettled(self, fee: int, requests: int) -> None:
        self._unsettled_fee.set(fee)
        self._unsettled_requests.set(requests)

    def settlement(self, outcome: str) -> None:
        self._settlements.add(1, {"outcome": outcome})

    def confirmed(self, lag_s: float, requests: int, gas_used: int) -> None:
        self._lag.record(lag_s)
        self._batch.record(requests)
        if requests:
            self._gas.record(gas_used / requests)

    def retry(self, reason: str) -> None:
        self._retries.add(1, {"reason": reason})

    def written_off(self, count: int) -> None:
        self._written_off.add(count)

    def refused(self, subject: str) -> None:
        self._refused.add(1, {"subject": subject})
