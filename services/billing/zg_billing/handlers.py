# SPDX-License-Identifier: Apache-2.0
"""JetStream subscribers: decode, then hand to the intake or the settler. No billing logic here.

Every consumer is durable with explicit acks: a message is acked only after its effect is in
Redis, and every effect is idempotent, so a redelivery changes nothing twice.
"""

from __future__ import annotations

import logging

from faststream.nats import NatsMessage, NatsRouter, PullSub

from zg_billing.intake import Intake
from zg_billing.settler import Settler
from zg_shared.bus import CHAIN_STREAM, SERVING_STREAM
from zg_shared.chain import ChainUnavailable
from zg_shared.commands import SettleNow, SettleNowReply
from zg_shared.events import (
    FeesSettledV1,
    ProofFailedV1,
    ProofReadyV1,
    RefundRequestedV1,
    ReorgDetectedV1,
    RequestServedV1,
)

log = logging.getLogger(__name__)
CHAIN_RETRY_S = 2.0


def create_router(intake: Intake, settler: Settler, durable_prefix: str) -> NatsRouter:
    router = NatsRouter()

    def durable(name: str) -> str:
        return f"{durable_prefix}-{name}"

    @router.subscriber(
        RequestServedV1.SUBJECT,
        stream=SERVING_STREAM,
        durable=durable("served"),
        pull_sub=PullSub(batch_size=64),
    )
    async def on_request_served(event: RequestServedV1) -> None:
        await intake.record(event)

    @router.subscriber(
        ProofReadyV1.SUBJECT,
        stream=SERVING_STREAM,
        durable=durable("proof-ready"),
        pull_sub=PullSub(batch_size=1),
    )
    async def on_proof_ready(event: ProofReadyV1, message: NatsMessage) -> None:
        try:
            await settler.on_proof_ready(event)
        except ChainUnavailable as exc:
            # The RPC endpoint is away: the proofs stay valid, so try again in a while.
            log.warning("settlement %s waits for the chain: %s", event.settlement_id, exc)
            await message.nack(delay=CHAIN_RETRY_S)

    @router.subscriber(
        ProofFailedV1.SUBJECT,
        stream=SERVING_STREAM,
        durable=durable("proof-failed"),
        pull_sub=PullSub(batch_size=1),
    )
    async def on_proof_failed(event: ProofFailedV1) -> None:
        await settler.on_proof_failed(event)

    @router.subscriber(
        FeesSettledV1.SUBJECT,
        stream=CHAIN_STREAM,
        durable=durable("fees-settled"),
        pull_sub=PullSub(batch_size=16),
    )
    async def on_fees_settled(event: FeesSettledV1, message: NatsMessage) -> None:
        try:
            await settler.on_fees_settled(event)
        except ChainUnavailable as exc:
            # Checked against the chain before it is believed: wait for the chain.
            log.warning("a FeesSettled for %s waits for the chain: %s", event.user, exc)
            await message.nack(delay=CHAIN_RETRY_S)

    @router.subscriber(
        RefundRequestedV1.SUBJECT,
        stream=CHAIN_STREAM,
        durable=durable("refund-requested"),
        pull_sub=PullSub(batch_size=16),
    )
    async def on_refund_requested(event: RefundRequestedV1, message: NatsMessage) -> None:
        try:
            await settler.on_refund_requested(event)
        except ChainUnavailable as exc:
            log.warning("a RefundRequested of %s waits for the chain: %s", event.user, exc)
            await message.nack(delay=CHAIN_RETRY_S)

    @router.subscriber(
        ReorgDetectedV1.SUBJECT,
        stream=CHAIN_STREAM,
        durable=durable("reorg"),
        pull_sub=PullSub(batch_size=1),
    )
    async def on_reorg(_: ReorgDetectedV1) -> None:
        await settler.on_reorg()

    @router.subscriber(SettleNow.subject(settler.provider))
    async def on_settle_now(command: SettleNow) -> SettleNowReply:
        wait = settler.settle_now_wait()
        if wait > 0:
            log.warning("SettleNow refused: the last one was honoured less than the interval ago")
            return SettleNowReply(provider=settler.provider, users=(), retry_after_s=wait)
        users = await settler.settle_now(command.user)
        return SettleNowReply(provider=settler.provider, users=tuple(users))

    return router
