# SPDX-License-Identifier: Apache-2.0
"""JetStream subscribers: decode, then hand to the intake or the settler. No billing logic here.

Every consumer is durable with explicit acks: a message is acked only after its effect is in
Redis, and every effect is idempotent, so a redelivery changes nothing twice. A handler that
fails because Redis is away for a moment (a Sentinel failover) or the chain is, has its
message redelivered a little later (`redelivered_on_outage`): faststream would otherwise
reject (TERM) it, and JetStream never delivers a rejected message again.

Each consumer reads its event before its handler runs (`zg_shared.busread.event_of`): a message
on its subject that is no such event (a publish ack or API reply stored there through the
reply-subject trick) is rejected with one warning line, and the handler never runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from faststream.nats import JStream, NatsMessage, NatsRouter, PullSub

from zg_billing.intake import Intake
from zg_billing.lease import Deposed
from zg_billing.settler import Settler
from zg_shared.bus import CHAIN_STREAM, SERVING_STREAM
from zg_shared.busread import event_of, read_event, where
from zg_shared.chain import ChainUnavailable
from zg_shared.commands import SettleNow, SettleNowReply
from zg_shared.events import (
    FeesSettledV1,
    ProofFailedV1,
    ProofReadyV1,
    RefundRequestedV1,
    ReorgDetectedV1,
    RequestServedV1,
    SignerRotatedV1,
)
from zg_shared.events.base import Event
from zg_shared.redisconn import REDIS_AWAY

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)
CHAIN_RETRY_S = 2.0
# The chain away, or Redis's primary lost and the sentinels not yet done promoting a replica
# (or a write reaching the old primary, now a read-only replica): seconds.
# A deposed leader's message is the new leader's to handle.
OUTAGES: tuple[type[Exception], ...] = (ChainUnavailable, *REDIS_AWAY, Deposed)


@contextlib.asynccontextmanager
async def redelivered_on_outage(message: NatsMessage, what: str) -> AsyncIterator[None]:
    """Runs a handler; if the chain or Redis is away, the message comes again after
    CHAIN_RETRY_S instead of being rejected for good."""
    try:
        yield
    except OUTAGES as exc:
        log.warning("%s waits for the chain or Redis (%r): redelivered", what, exc)
        await message.nack(delay=CHAIN_RETRY_S)


def create_router(
    intake: Intake, settler: Settler, durable_prefix: str, inbox_prefix: bytes
) -> NatsRouter:
    """`inbox_prefix`: where billing's NATS user may receive (NatsAccess)."""
    router = NatsRouter()

    def consumer(
        model: type[E], stream: JStream, name: str, batch: int
    ) -> Callable[[Callable[[E, NatsMessage], Awaitable[None]]], None]:
        """The decorator of a handler of `model` events: billing's durable pull consumer `name`
        of `model.SUBJECT`. The handler runs only on a message that is such an event."""
        subscribe = router.subscriber(
            model.SUBJECT,
            stream=stream,
            durable=f"{durable_prefix}-{name}",
            pull_sub=PullSub(batch_size=batch),
            inbox_prefix=inbox_prefix,
        )

        def register(handle: Callable[[E, NatsMessage], Awaitable[None]]) -> None:
            # Not functools.wraps: faststream reads the signature, and must see the message.
            async def read_then_handle(message: NatsMessage) -> None:
                if (event := await event_of(model, message)) is not None:
                    await handle(event, message)

            subscribe(read_then_handle)

        return register

    @consumer(RequestServedV1, SERVING_STREAM, "served", 64)
    async def on_request_served(event: RequestServedV1, message: NatsMessage) -> None:
        async with redelivered_on_outage(message, f"served request {event.event_id}"):
            await intake.record(event)

    @consumer(ProofReadyV1, SERVING_STREAM, "proof-ready", 1)
    async def on_proof_ready(event: ProofReadyV1, message: NatsMessage) -> None:
        # The proofs stay valid while the chain or Redis is away: try again in a while.
        async with redelivered_on_outage(message, f"settlement {event.settlement_id}'s proof"):
            await settler.on_proof_ready(event)

    @consumer(ProofFailedV1, SERVING_STREAM, "proof-failed", 1)
    async def on_proof_failed(event: ProofFailedV1, message: NatsMessage) -> None:
        async with redelivered_on_outage(message, f"settlement {event.settlement_id}'s failure"):
            await settler.on_proof_failed(event)

    @consumer(FeesSettledV1, CHAIN_STREAM, "fees-settled", 16)
    async def on_fees_settled(event: FeesSettledV1, message: NatsMessage) -> None:
        # Checked against the chain before it is believed: wait for the chain.
        async with redelivered_on_outage(message, f"a FeesSettled for {event.user}"):
            await settler.on_fees_settled(event)

    @consumer(RefundRequestedV1, CHAIN_STREAM, "refund-requested", 16)
    async def on_refund_requested(event: RefundRequestedV1, message: NatsMessage) -> None:
        async with redelivered_on_outage(message, f"a RefundRequested of {event.user}"):
            await settler.on_refund_requested(event)

    @consumer(SignerRotatedV1, CHAIN_STREAM, "signer-rotated", 16)
    async def on_signer_rotated(event: SignerRotatedV1, message: NatsMessage) -> None:
        async with redelivered_on_outage(message, f"a SignerRotated of {event.user}"):
            await settler.on_signer_rotated(event)

    @consumer(ReorgDetectedV1, CHAIN_STREAM, "reorg", 1)
    async def on_reorg(_: ReorgDetectedV1, message: NatsMessage) -> None:
        async with redelivered_on_outage(message, "a reorg"):
            await settler.on_reorg()

    @router.subscriber(SettleNow.subject(settler.provider))
    async def on_settle_now(message: NatsMessage) -> SettleNowReply | None:
        # Anything else delivered here (a copy the reply-subject trick sent) is no command: one
        # line, nothing flagged, no answer.
        command = read_event(SettleNow, message.body, where(message.raw_message))
        if command is None:
            return None
        wait = settler.settle_now_wait()
        if wait > 0:
            log.warning("SettleNow refused: the last one was honoured less than the interval ago")
            return SettleNowReply(provider=settler.provider, users=(), retry_after_s=wait)
        users = await settler.settle_now(command.user)
        return SettleNowReply(provider=settler.provider, users=tuple(users))

    return router
