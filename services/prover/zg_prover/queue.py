# SPDX-License-Identifier: Apache-2.0
"""The prover's queue depth, read from its durable JetStream consumer: the number an SRE
scales provers on (alert ZgProverBacklog). Every replica reports the one shared consumer, so
panels and alerts take the max over replicas. Read in the background every few seconds,
because a metrics scrape cannot wait on NATS; until the first read the gauges are absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from faststream.nats import NatsBroker

from zg_prover.metrics import ProverMetrics

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 5.0


class QueueDepthReporter:
    def __init__(
        self,
        broker: NatsBroker,
        stream: str,
        durable: str,
        metrics: ProverMetrics,
        every_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._broker = broker
        self._stream = stream
        self._durable = durable
        self._metrics = metrics
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prover-queue-depth")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def read_once(self) -> None:
        info = await self._broker.connection.jetstream().consumer_info(
            self._stream, self._durable, timeout=2.0
        )
        self._metrics.queue(info.num_pending or 0, info.num_ack_pending or 0)

    async def _run(self) -> None:
        while True:
            try:
                await self.read_once()
            except (nats.errors.Error, TimeoutError) as exc:
                # The consumer may not exist yet, or NATS is away: /readyz reports the latter.
                log.debug("queue depth not read: %s", exc)
            await asyncio.sleep(self._every_s)
