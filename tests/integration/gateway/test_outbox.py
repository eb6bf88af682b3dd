# SPDX-License-Identifier: Apache-2.0
"""The outbox drainer on a real Redis and JetStream: batches published once and in order, the
sending list emptied, and a dead drainer's unconfirmed entries published again harmlessly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext
from opentelemetry import trace
from redis.asyncio import Redis

from tests.integration.jetstream import fresh_streams, stream_events
from zg_gateway.ledger import OUTBOX_KEY
from zg_gateway.outbox import (
    SENDERS_KEY,
    OutboxDrainer,
    OutboxEntry,
    legacy_sending_key,
    outbox_entry,
    sending_key,
)
from zg_gateway.service import ALIVE_PREFIX, alive_key
from zg_shared.events import RequestServedV1

USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
SUBJECT = RequestServedV1.SUBJECT


def served(nonce: int) -> RequestServedV1:
    return RequestServedV1(
        event_id=f"request-{nonce}",
        service="chat",
        user=USER,
        provider=PROVIDER,
        nonce=nonce,
        fee=30,
        input_fee=30,
        previous_output_fee=0,
        signature="0x" + "00" * 96,
        input_units=3,
        output_units=0,
        output_fee=0,
        outcome="charged",
    )


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    await fresh_streams(nats_url)
    client = await nats.connect(nats_url)
    js = client.jetstream()
    yield js
    await client.close()


def drainer(
    redis: Redis, js: JetStreamContext, instance: str = "a", worker: int = 0
) -> OutboxDrainer:
    outbox = OutboxDrainer(
        redis,
        trace.get_tracer("test"),
        instance=instance,
        alive_prefix=ALIVE_PREFIX,
        worker=worker,
        batch=50,
    )
    outbox.js = js
    return outbox


async def nonces_published(js: JetStreamContext) -> list[int]:
    return [payload["nonce"] for _, payload in await stream_events(js, {SUBJECT})]


async def test_batches_are_published_once_in_order_and_sending_is_emptied(
    redis: Redis, js: JetStreamContext
) -> None:
    for nonce in range(1, 131):  # three batches of 50, the last one short
        await redis.lpush(OUTBOX_KEY, outbox_entry(served(nonce)))
    outbox = drainer(redis, js)

    assert await outbox.drain_once() == 130

    assert await nonces_published(js) == list(range(1, 131))
    assert await redis.llen(OUTBOX_KEY) == 0
    # The last batch is dropped from `sending` by the next take, or by flush.
    assert await redis.llen(sending_key("a")) == 30
    assert await outbox.drain_once() == 0
    assert await redis.llen(sending_key("a")) == 0
    await redis.lpush(OUTBOX_KEY, outbox_entry(served(131)))
    assert await outbox.drain_once() == 1
    await outbox.flush()
    assert await redis.llen(sending_key("a")) == 0
    assert await nonces_published(js) == list(range(1, 132))


async def test_a_dead_processs_unconfirmed_entries_are_reclaimed_once_and_published_again(
    redis: Redis, js: JetStreamContext
) -> None:
    """A drainer whose process's heartbeat lapsed has its sending list handed back by any other
    drainer (in order, oldest first); a live one's list is left alone."""
    for instance in ("dead", "live", "survivor"):
        await redis.set(alive_key(instance), "1")
    dead = drainer(redis, js, "dead")
    for nonce in (1, 2):
        await redis.lpush(OUTBOX_KEY, outbox_entry(served(nonce)))
    assert await dead.drain_once() == 2  # published; removal from `sending` still pending
    await redis.lpush(sending_key("dead"), outbox_entry(served(3)))  # taken, never published
    await redis.lpush(sending_key("dead"), outbox_entry(served(4)))
    live = drainer(redis, js, "live")
    await redis.lpush(OUTBOX_KEY, outbox_entry(served(5)))
    await live._take(keys=[OUTBOX_KEY, sending_key("live"), SENDERS_KEY], args=[10, "live"])
    survivor = drainer(redis, js, "survivor")

    assert await survivor.reclaim() == 0  # every heartbeat still there
    await redis.delete(alive_key("dead"))  # the process was killed: its heartbeat lapses
    assert await survivor.reclaim() == 4
    assert await survivor.reclaim() == 0  # moved once, whoever else looks
    assert await survivor.drain_once() == 4
    await survivor.flush()

    # JetStream dropped the republished 1 and 2 by their Nats-Msg-Id; 3 and 4 in order.
    assert await nonces_published(js) == [1, 2, 3, 4]
    assert await redis.exists(sending_key("dead")) == 0
    assert await redis.smembers(SENDERS_KEY) == {b"live", b"survivor"}
    assert await redis.llen(sending_key("live")) == 1  # a live process's, untouched


async def test_a_graceful_stop_hands_back_what_was_not_acknowledged_and_an_old_list_is_recovered(
    redis: Redis, js: JetStreamContext
) -> None:
    await redis.lpush(legacy_sending_key(1), outbox_entry(served(1)))  # an older version's
    outbox = drainer(redis, js, "a", worker=1)
    assert await outbox.recover() == 1
    assert await outbox.drain_once() == 1
    await redis.lpush(sending_key("a"), outbox_entry(served(2)))  # taken, never acknowledged
    assert await outbox.release() == 1
    assert await redis.smembers(SENDERS_KEY) == set()
    [back] = await redis.lrange(OUTBOX_KEY, 0, -1)
    assert OutboxEntry.model_validate_json(back).event_id == "request-2"
    assert await nonces_published(js) == [1]


async def test_only_the_gateways_own_subjects_leave_its_outbox(
    redis: Redis, js: JetStreamContext
) -> None:
    """Issue 12 item 5: an entry pushed onto zg:outbox with a money subject was published by
    the drainer into ZG_CHAIN (a forged FeesSettled), and an unreadable one stalled it."""
    forged = OutboxEntry(
        subject="chain.fees.settled.v1",
        event_id="forged-1",
        payload=json.dumps({"user": USER, "provider": PROVIDER, "amount": "1", "final_nonce": 9}),
    )
    await redis.lpush(OUTBOX_KEY, outbox_entry(served(1)))
    await redis.lpush(OUTBOX_KEY, forged.model_dump_json())
    await redis.lpush(OUTBOX_KEY, b"not an entry")
    await redis.lpush(OUTBOX_KEY, outbox_entry(served(2)))
    outbox = drainer(redis, js)

    await outbox.drain_once()
    await outbox.flush()

    assert await nonces_published(js) == [1, 2]
    assert await stream_events(js, {"chain.fees.settled.v1"}) == []
    assert await redis.llen(OUTBOX_KEY) == 0
    assert await redis.llen(sending_key("a")) == 0
