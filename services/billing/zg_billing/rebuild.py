# SPDX-License-Identifier: Apache-2.0
"""Rebuilding billing's view after Redis lost it.

Redis is a view; the durable record of what users owe is the `ZG_SERVING` stream. A marker key
says the view is whole. When it is missing (a first start, or a flushed or replaced Redis), the
whole served-request history is replayed through the same idempotent intake the live
consumer uses: requests the chain already settled are skipped, the rest return to the book and
to the gateway's view (nonces, unsettled fees, output debt), and the policy settles them.
"""

from __future__ import annotations

import contextlib
import logging

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from redis.asyncio import Redis

from zg_billing.intake import Intake
from zg_shared.bus import NatsAccess, stream_for
from zg_shared.bus import connect as connect_nats
from zg_shared.busread import read_event, where
from zg_shared.events import RequestServedV1

log = logging.getLogger(__name__)
MARKER_KEY = "zg:billing:view"
FETCH_BATCH = 500
# The replay's consumer: named, as billing's NATS user may touch only consumers it names
# (deploy/k8s/base/nats/auth.conf); made afresh for each replay, so it starts at the beginning.
REBUILD_CONSUMER = "billing-rebuild"


class Rebuilder:
    def __init__(self, redis: Redis, intake: Intake, bus: NatsAccess | str) -> None:
        self.redis = redis
        self.intake = intake
        self.bus = bus

    async def needed(self) -> bool:
        return not await self.redis.exists(MARKER_KEY)

    async def run(self) -> int:
        """Replays every served request on the stream; returns how many it read."""
        client = await connect_nats(self.bus)
        read = 0
        try:
            js = client.jetstream()
            subject = RequestServedV1.SUBJECT
            stream = stream_for(subject)
            with contextlib.suppress(NotFoundError):  # an earlier replay's, cut short
                await js.delete_consumer(stream, REBUILD_CONSUMER)
            await js.add_consumer(
                stream,
                ConsumerConfig(
                    name=REBUILD_CONSUMER,
                    filter_subject=subject,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=60.0,
                ),
            )
            sub = await js.pull_subscribe_bind(REBUILD_CONSUMER, stream=stream)
            while True:
                try:
                    messages = await sub.fetch(FETCH_BATCH, timeout=1.0)
                except TimeoutError:  # nats-py raises its own or asyncio's, by code path
                    break
                for message in messages:
                    # What the reply-subject trick stored under the subject (a publish ack, an
                    # API reply, an empty status) stays in ZG_SERVING, which no one may purge:
                    # passed over with one line, or no rebuild would ever finish and nothing
                    # would be settled again.
                    event = read_event(RequestServedV1, message.data, where(message))
                    if event is not None:
                        await self.intake.record(event)
                    read += 1
                if read % 10_000 < FETCH_BATCH:
                    log.info("rebuild: %d served requests replayed", read)
                pending = (await sub.consumer_info()).num_pending
                if not pending:
                    break
            await sub.unsubscribe()
            await js.delete_consumer(stream, REBUILD_CONSUMER)
        finally:
            await client.close()
        await self.redis.set(MARKER_KEY, "1")
        log.info("rebuild done: %d served requests replayed", read)
        return read
