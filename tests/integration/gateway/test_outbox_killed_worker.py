# SPDX-License-Identifier: Apache-2.0
"""Gateway workers killed mid-publish (SIGKILL, real processes on a real Redis and NATS, each
logged in as the gateway's users): another worker publishes what they held within the bound
of docs/gateway.md (`alive_ttl_s + reclaim_every_s`), and every event is in the stream exactly
once, by its Nats-Msg-Id. Before, a worker's unacknowledged entries waited for a process of
the same worker index to start again, which no live gateway did."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from redis.asyncio import Redis

from tests.integration.gateway.test_outbox import served
from tests.integration.jetstream import fresh_streams
from tests.integration.polling import eventually
from zg_gateway.ledger import OUTBOX_KEY
from zg_gateway.outbox import SENDERS_KEY, outbox_entry, sending_key
from zg_shared.localservers import PrivateServer
from zg_shared.natsauth import NatsCredentials
from zg_shared.redisacl import ADMIN_USER, RedisCredentials

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
EVENTS = 60
BATCH = 20
ALIVE_TTL_S = 2.0
RECLAIM_EVERY_S = 1.0
# The documented bound, with room for a loaded machine: what it asserts is that the events
# arrive, not how fast.
BOUND_S = ALIVE_TTL_S + RECLAIM_EVERY_S + 30.0


@pytest.fixture
async def admin_redis(
    acl_redis_server: tuple[PrivateServer, RedisCredentials],
) -> AsyncIterator[Redis]:
    server, credentials = acl_redis_server
    client = Redis.from_url(credentials.url(server.url, ADMIN_USER))
    await client.flushdb()
    yield client
    await client.aclose()


class Workers:
    def __init__(
        self,
        redis: tuple[PrivateServer, RedisCredentials],
        nats_server: PrivateServer,
        nats_credentials: NatsCredentials,
    ) -> None:
        self.redis_url = redis[1].url(redis[0].url, "gateway")
        self.nats_url = nats_server.url
        self.nats_credentials = nats_credentials
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, instance: str, nats_user: str = "gateway", **env: str
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.gateway.outbox_worker", instance],
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "OUTBOX_WORKER_REDIS_URL": self.redis_url,
                "OUTBOX_WORKER_NATS_URL": self.nats_url,
                "OUTBOX_WORKER_NATS_USER": nats_user,
                "OUTBOX_WORKER_NATS_PASSWORD": self.nats_credentials.passwords[nats_user],
                "OUTBOX_WORKER_ALIVE_TTL_S": str(ALIVE_TTL_S),
                "OUTBOX_WORKER_RECLAIM_EVERY_S": str(RECLAIM_EVERY_S),
                "OUTBOX_WORKER_BATCH": str(BATCH),
                **env,
            },
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def workers(
    acl_redis_server: tuple[PrivateServer, RedisCredentials],
    nats_server: PrivateServer,
    nats_credentials: NatsCredentials,
) -> AsyncIterator[Workers]:
    started = Workers(acl_redis_server, nats_server, nats_credentials)
    yield started
    started.stop_all()


async def msg_ids(nats_url: str) -> Counter[str]:
    """How many times each Nats-Msg-Id is in ZG_SERVING."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        info = await js.stream_info("ZG_SERVING")
        found: Counter[str] = Counter()
        if info.state.messages:
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                message = await js.get_msg("ZG_SERVING", seq)
                found[(message.headers or {})["Nats-Msg-Id"]] += 1
        return found
    finally:
        await client.close()


async def test_workers_killed_mid_publish_lose_and_duplicate_nothing(
    admin_redis: Redis, workers: Workers, nats_url: str
) -> None:
    await fresh_streams(nats_url)
    for nonce in range(1, EVENTS + 1):
        await admin_redis.lpush(OUTBOX_KEY, outbox_entry(served(nonce)))

    # Two publishes that never get their ack, so each kill lands mid-publish: `unstored` logs
    # in as a user JetStream refuses the gateway's subject to (nothing stored), `unacked` as
    # the gateway with its acks sent where it cannot hear them (stored, never confirmed).
    unstored = workers.start("unstored", nats_user="billing")

    async def holding(instance: str, outbox_left: int) -> bool:
        return (
            await admin_redis.llen(sending_key(instance)) == BATCH
            and await admin_redis.llen(OUTBOX_KEY) == outbox_left
        )

    await eventually(lambda: holding("unstored", EVENTS - BATCH), what="a batch unstored")
    unacked = workers.start("unacked", OUTBOX_WORKER_INBOX_PREFIX="_INBOX.astray")
    await eventually(lambda: holding("unacked", EVENTS - 2 * BATCH), what="a batch unacked")

    async def stored(count: int) -> bool:
        return sum((await msg_ids(nats_url)).values()) == count

    await eventually(lambda: stored(BATCH), what="the unacknowledged batch stored")
    for process in (unstored, unacked):
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert await admin_redis.smembers(SENDERS_KEY) == {b"unstored", b"unacked"}

    # A live worker drains the rest at once and the dead ones' batches once their heartbeats
    # have lapsed.
    survivor = workers.start("survivor")
    expected = {f"request-{n}" for n in range(1, EVENTS + 1)}

    async def all_published() -> bool:
        # The unacknowledged batch is in the stream already: wait for its list to go too.
        return (
            set(await msg_ids(nats_url)) == expected
            and await admin_redis.exists(sending_key("unstored"), sending_key("unacked")) == 0
            and await admin_redis.llen(OUTBOX_KEY) == 0
        )

    await eventually(all_published, within_s=BOUND_S, what="every event published")
    assert await admin_redis.smembers(SENDERS_KEY) == {b"survivor"}

    survivor.send_signal(signal.SIGTERM)  # a graceful stop leaves the registry
    assert await asyncio.to_thread(survivor.wait, 30) == 0
    assert await admin_redis.smembers(SENDERS_KEY) == set()
    # Each exactly once, after the survivor published the reclaimed batches again.
    assert await msg_ids(nats_url) == Counter(expected)
