# SPDX-License-Identifier: Apache-2.0
"""The prover's metrics (OpenTelemetry instruments, exported on /metrics)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.metrics import Meter

from zg_shared.events import ProofFailedV1, ProofReadyV1


class ProverMetrics:
    def __init__(self, meter: Meter, backend: str) -> None:
        self._backend = {"backend": backend}
        self._proofs = meter.create_counter(
            "zg_prover_proofs", unit="{proof}", description="Chunk proofs published"
        )
        self._failures = meter.create_counter(
            "zg_prover_failures",
            unit="{settlement}",
            description="Settlements that cannot be proven",
        )
        self._seconds = meter.create_histogram(
            "zg_prover_settlement_seconds",
            unit="s",
            description="Time to prove one settlement request",
        )
        self._in_flight = meter.create_up_down_counter(
            "zg_prover_in_flight",
            unit="{settlement}",
            description="Settlement requests being proven",
        )
        self._queue_pending = meter.create_gauge(
            "zg_prover_queue_pending",
            unit="{settlement}",
            description="Settlement requests waiting in the provers' JetStream consumer",
        )
        self._queue_ack_pending = meter.create_gauge(
            "zg_prover_queue_ack_pending",
            unit="{settlement}",
            description="Settlement requests delivered to a prover and not yet acknowledged",
        )
        # Present at 0 from the start: the first failure then shows as an increase.
        self._failures.add(0, self._backend)
        self._in_flight.add(0, self._backend)

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        self._in_flight.add(1, self._backend)
        try:
            yield
        finally:
            self._in_flight.add(-1, self._backend)

    def queue(self, pending: int, ack_pending: int) -> None:
        self._queue_pending.set(pending)
        self._queue_ack_pending.set(ack_pending)

    def record(self, outcome: ProofReadyV1 | ProofFailedV1) -> None:
        if isinstance(outcome, ProofReadyV1):
            self._proofs.add(len(outcome.proofs), self._backend)
            self._seconds.record(outcome.prove_seconds, self._backend)
        else:
            self._failures.add(1, self._backend)
