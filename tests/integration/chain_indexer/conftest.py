# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the chain indexer: a clean Redis and chain stream per test, indexers started on
demand (and always stopped), and checks that Redis agrees with the contract's views."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from redis.asyncio import Redis

from tests.integration.jetstream import drop_streams, stream_events
from zg_chain_indexer.app import IndexerApp, create_app
from zg_chain_indexer.config import IndexerSettings
from zg_shared.accounts import AccountStore
from zg_shared.bus import CHAIN_STREAM
from zg_shared.busadmin import prepare_streams
from zg_shared.chain import ServingClient
from zg_shared.events.chain import (
    AccountUpdatedV1,
    FeesSettledV1,
    RefundRequestedV1,
    ReorgDetectedV1,
    ServiceRemovedV1,
    ServiceUpdatedV1,
)
from zg_shared.registry import ServiceRegistry

CHAIN_SUBJECTS = {
    AccountUpdatedV1.SUBJECT,
    FeesSettledV1.SUBJECT,
    RefundRequestedV1.SUBJECT,
    ServiceUpdatedV1.SUBJECT,
    ServiceRemovedV1.SUBJECT,
    ReorgDetectedV1.SUBJECT,
}


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """JetStream with no stream left by an earlier test (`start_indexer` makes them)."""
    await drop_streams(nats_url)
    client = await nats.connect(nats_url)
    stream = client.jetstream()
    yield stream
    await client.close()


@pytest.fixture
async def redis(redis: Redis) -> Redis:
    """The shared fixture's client, with every database emptied, not only its own."""
    await redis.flushall()
    return redis


StartIndexer = Callable[..., Awaitable[IndexerApp]]


@pytest.fixture
async def start_indexer(
    nats_url: str, redis_url: str, js: JetStreamContext, redis: Redis
) -> AsyncIterator[StartIndexer]:
    """Starts an indexer on `rpc_url` following `serving`; every one is stopped at the end."""
    started: list[IndexerApp] = []

    async def start(rpc_url: str, serving: str, **overrides: Any) -> IndexerApp:
        # The admin step: the streams exist, stamped with this deployment.
        await prepare_streams(nats_url, rpc_url, serving, [CHAIN_STREAM.name])
        settings = IndexerSettings(
            nats_url=nats_url,
            redis_url=redis_url,
            rpc_url=rpc_url,
            serving_address=serving,
            http_port=0,
            log_json=False,
            **{
                "confirmations": 0,
                "poll_interval_s": 0.05,
                "backoff_max_s": 0.5,
                "rpc_timeout_s": 2.0,
                **overrides,
            },
        )
        app = create_app(settings)
        await app.start()
        started.append(app)

        async def has_cursor() -> bool:
            return await app.follower.checkpoint.load() is not None

        # Logs of blocks before its first cursor are in the backfilled view, not published.
        await wait_for(has_cursor)
        return app

    yield start
    for app in started:
        if app.task is not None:
            await app.stop()


async def stop_indexer(app: IndexerApp) -> None:
    await app.stop()


async def wait_for(condition: Callable[[], Awaitable[bool]], within_s: float = 30.0) -> None:
    """Polls `condition` (a Redis or RPC read: nothing to wait on but time) until it holds."""
    async with asyncio.timeout(within_s):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def wait_indexed(app: IndexerApp, block: int, within_s: float = 30.0) -> None:
    """Until every log up to and including `block` is published (and the cursor is saved)."""

    async def done() -> bool:
        cursor = await app.follower.checkpoint.load()
        return cursor is not None and cursor.sort_key() >= (block, float("inf"))

    await wait_for(done, within_s)


async def chain_events(js: JetStreamContext) -> list[tuple[str, dict[str, Any]]]:
    return await stream_events(js, CHAIN_SUBJECTS, stream="ZG_CHAIN")


async def assert_redis_matches_chain(redis: Redis, serving: ServingClient) -> None:
    """Every account's chain fields and refunds, and the registry, equal the contract's views."""
    store = AccountStore(redis)
    accounts = await serving.get_all_accounts()
    for account in accounts:
        state = await store.read(account.user, account.provider)
        assert state is not None, f"{account.user} unknown to Redis"
        assert (state.balance, state.pending_refund, state.settled_nonce, state.signer) == (
            account.balance,
            account.pending_refund,
            account.nonce,
            account.signer,
        )
        raw: dict[Any, Any] = await redis.hgetall(
            f"zg:acct:{{{account.provider.lower()}:{account.user.lower()}}}:refunds"
        )
        stored = {int(k): v.decode() for k, v in raw.items()}
        assert stored == {i: r.model_dump_json() for i, r in enumerate(account.refunds)}
    registry = ServiceRegistry(redis)
    services = await serving.get_all_services()
    for provider in {s.provider for s in services}:
        assert await registry.of_provider(provider) == sorted(
            (s for s in services if s.provider == provider), key=lambda s: s.name
        )
