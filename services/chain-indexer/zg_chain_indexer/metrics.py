# SPDX-License-Identifier: Apache-2.0
"""The indexer's metrics (OpenTelemetry instruments, exported on /metrics)."""

from __future__ import annotations

from opentelemetry.metrics import Meter


class IndexerMetrics:
    def __init__(self, meter: Meter) -> None:
        self._lag = meter.create_gauge(
            "zg_indexer_head_lag_blocks",
            unit="{block}",
            description="Chain head minus the last block indexed (confirmations included)",
        )
        self._last = meter.create_gauge(
            "zg_indexer_last_indexed_block",
            unit="{block}",
            description="Highest block whose events are all published",
        )
        self._published = meter.create_counter(
            "zg_indexer_events_published",
            unit="{event}",
            description="Chain events published to JetStream, by type",
        )
        self._duplicates = meter.create_counter(
            "zg_indexer_duplicate_publishes",
            unit="{event}",
            description="Publishes JetStream reported as duplicates (should stay 0)",
        )
        self._reorgs = meter.create_counter(
            "zg_indexer_reorgs", unit="{reorg}", description="Reorgs detected and rolled back"
        )
        self._rpc_errors = meter.create_counter(
            "zg_indexer_rpc_errors",
            unit="{error}",
            description="Failed polls (RPC, NATS or Redis), each followed by a back-off",
        )
        self._backfills = meter.create_counter(
            "zg_indexer_backfills",
            unit="{backfill}",
            description="Rebuilds of the Redis view from the contract's views",
        )
        # Counters of faults are present at 0 from the start: a panel shows 0, not "no data",
        # and the first fault shows as an increase (a counter born at 1 increases by nothing).
        for counter in (self._duplicates, self._reorgs, self._rpc_errors, self._backfills):
            counter.add(0)

    def progress(self, head: int, indexed: int) -> None:
        self._lag.set(max(head - indexed, 0))
        self._last.set(indexed)

    def published(self, event_type: str, duplicate: bool) -> None:
        self._published.add(1, {"type": event_type})
        if duplicate:
            self._duplicates.add(1, {"type": event_type})

    def reorg(self) -> None:
        self._reorgs.add(1)

    def poll_error(self, kind: str) -> None:
        self._rpc_errors.add(1, {"kind": kind})

    def backfill(self) -> None:
        self._backfills.add(1)
