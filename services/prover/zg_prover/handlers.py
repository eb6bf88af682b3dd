# SPDX-License-Identifier: Apache-2.0
"""JetStream subscribers: validate -> prove -> publish. No proving logic here."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker, NatsMessage, NatsRouter, PullSub
from opentelemetry import trace

from zg_prover.metrics import ProverMetrics
from zg_prover.service import ProverService
from zg_shared.bus import SERVING_STREAM, publish_event
from zg_shared.busread import event_of
from zg_shared.events import SettlementRequestedV1
from zg_shared.periodic import repeating

log = logging.getLogger(__name__)


def create_router(
    service: ProverService,
    broker: NatsBroker,
    metrics: ProverMetrics,
    durable: str,
    heartbeat_s: float,
    inbox_prefix: bytes,
    concurrency: int = 1,
) -> NatsRouter:
    """`inbox_prefix`: where the prover's NATS user may receive (NatsAccess). `concurrency`
    pull subscriptions on the one durable consumer, each fetching one request and proving it
    before it fetches the next: that many proofs side by side (each in a thread; groth16py
    releases the GIL), as that many replicas would, and no request waits here unacknowledged
    while another replica is idle. (One subscription fetching a batch would wait for the
    batch's every proof before it fetched again, and a part published a moment later would
    wait for it.)"""
    router = NatsRouter()

    async def on_settlement_requested(message: NatsMessage) -> None:
        # A copy stored here through the reply-subject trick is no request: dropped, one line.
        if (request := await event_of(SettlementRequestedV1, message)) is None:
            return
        # What an SRE searches traces by (faststream's consumer span is the current one).
        span = trace.get_current_span()
        span.set_attribute("zg.settlement_id", request.settlement_id)
        span.set_attribute("zg.provider", request.provider)
        span.set_attribute("zg.users", [batch.user for batch in request.batches])
        with metrics.in_flight():
            # In-progress acks while the proof runs, so that a long one is not redelivered to
            # another prover meanwhile.
            async with repeating(heartbeat_s, message.in_progress):
                outcome = await service.handle(request)
        metrics.record(outcome)
        # Published before the ack: if we die in between, the redelivered request produces
        # the same event id, which JetStream drops as a duplicate.
        await publish_event(broker, outcome)
        log.info(
            "settlement %s: %s",
            request.settlement_id,
            type(outcome).__name__,
            extra={"zg_settlement_id": request.settlement_id},
        )

    for _ in range(concurrency):
        router.subscriber(
            SettlementRequestedV1.SUBJECT,
            stream=SERVING_STREAM,
            durable=durable,
            pull_sub=PullSub(batch_size=1),
            inbox_prefix=inbox_prefix,
        )(on_settlement_requested)
    return router
