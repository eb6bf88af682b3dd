# SPDX-License-Identifier: Apache-2.0
"""Faults on a private anvil (the session's is shared and must not be rewound): a reorg that
drops indexed blocks, and the RPC endpoint going away for a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from nats.js import JetStreamContext
from redis.asyncio import Redis

from tests.conftest import LOCK_TIME
from tests.integration.chain_indexer.conftest import (
    StartIndexer,
    assert_redis_matches_chain,
    chain_events,
    wait_for,
    wait_indexed,
)
from tests.integration.chain_indexer.test_follow import expected, published, service
from tests.integration.conftest import node_key
from tests.integration.tcpproxy import TcpProxy
from zg_shared.chain import AnvilNode, DevChain, ServingClient, Web3Client
from zg_shared.events.chain import ReorgDetectedV1
from zg_shared.registry import ServiceRegistry


async def deploy(w3: Web3Client, node: AnvilNode) -> ServingClient:
    return await ServingClient.deploy(w3, node_key(node, 0), lock_time=LOCK_TIME)


async def reorgs_and_others(
    js: JetStreamContext,
) -> tuple[list[ReorgDetectedV1], list[tuple[str, dict[str, Any]]]]:
    """The chain stream's ReorgDetected events, and its other events in their order."""
    events = await chain_events(js)
    reorgs = [ReorgDetectedV1.model_validate(p) for s, p in events if s == ReorgDetectedV1.SUBJECT]
    return reorgs, [(s, p) for s, p in events if s != ReorgDetectedV1.SUBJECT]


async def test_a_reorg_rolls_redis_back_and_publishes_the_new_canonical_events(
    node: AnvilNode,
    private_w3: Web3Client,
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    chain = DevChain(private_w3)
    serving = await deploy(private_w3, node)
    provider, user = node_key(node, 1), node_key(node, 2)
    indexer = await start_indexer(node.rpc_url, serving.address)
    kept = [
        await serving.as_sender(provider).add_or_update_service(service("a", provider.address)),
        await serving.as_sender(user).add_account(provider.address, (1, 2), value=1_000),
    ]
    ancestor = kept[-1].block_number
    await wait_indexed(indexer, ancestor)
    snapshot = await chain.snapshot()
    # Fresh senders on each side of the fork: each keeps its own nonce.
    dropped = [
        await serving.as_sender(user).deposit_fund(provider.address, value=500),
        await serving.as_sender(user).request_refund(provider.address, 200),
        await serving.as_sender(provider).add_or_update_service(service("a", provider.address, 99)),
        await serving.as_sender(provider).add_or_update_service(service("b", provider.address)),
    ]
    await wait_indexed(indexer, dropped[-1].block_number)
    assert await ServiceRegistry(redis).get(provider.address, "b") is not None

    await chain.revert(snapshot)
    canonical = [await serving.as_sender(user).deposit_fund(provider.address, value=70)]
    await chain.mine(5)  # the new branch outgrows the old one
    head = int(await private_w3.eth.block_number)
    await wait_indexed(indexer, head)

    reorgs, others = await reorgs_and_others(js)
    assert [(r.common_ancestor, r.dropped_from) for r in reorgs] == [(ancestor, ancestor + 1)]
    assert published(others) == expected(kept + dropped + canonical)
    # Outcomes only: one reorg event, each canonical event once, Redis equal to the chain. How
    # often the follower looked back (a loaded machine may see the new branch while it is still
    # shorter, and look twice) is incidental.
    await assert_redis_matches_chain(redis, serving)
    assert await ServiceRegistry(redis).get(provider.address, "b") is None
    account = await serving.get_account(user.address, provider.address)
    assert (account.balance, account.refunds) == (1_070, ())


async def test_a_reorg_deeper_than_the_journal_resumes_after_the_last_canonical_event(
    node: AnvilNode,
    private_w3: Web3Client,
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    chain = DevChain(private_w3)
    serving = await deploy(private_w3, node)
    provider, user = node_key(node, 1), node_key(node, 2)
    # A two-block journal: the ancestor of a six-block reorg is not in it.
    indexer = await start_indexer(node.rpc_url, serving.address, reorg_window=2)
    kept = [await serving.as_sender(user).add_account(provider.address, (1, 2), value=100)]
    await wait_indexed(indexer, kept[-1].block_number)
    snapshot = await chain.snapshot()
    dropped = [
        await serving.as_sender(user).deposit_fund(provider.address, value=n) for n in range(1, 7)
    ]
    dropped.append(
        await serving.as_sender(provider).add_or_update_service(service("gone", provider.address))
    )
    await wait_indexed(indexer, dropped[-1].block_number)

    await chain.revert(snapshot)
    canonical = [await serving.as_sender(user).deposit_fund(provider.address, value=1_000)]
    await chain.mine(10)
    await wait_indexed(indexer, int(await private_w3.eth.block_number))

    reorgs, others = await reorgs_and_others(js)
    assert [r.common_ancestor for r in reorgs] == [kept[-1].block_number]
    assert published(others) == expected(kept + dropped + canonical)
    assert indexer.follower.duplicates == 0
    await assert_redis_matches_chain(redis, serving)
    assert await ServiceRegistry(redis).get(provider.address, "gone") is None


async def test_a_shallow_reorg_inside_the_confirmations_is_never_seen(
    node: AnvilNode,
    private_w3: Web3Client,
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    chain = DevChain(private_w3)
    serving = await deploy(private_w3, node)
    provider, user = node_key(node, 1), node_key(node, 2)
    await chain.mine(3)
    indexer = await start_indexer(node.rpc_url, serving.address, confirmations=3)
    kept = [await serving.as_sender(user).add_account(provider.address, (1, 2), value=10)]
    await chain.mine(3)
    await wait_indexed(indexer, kept[-1].block_number)
    snapshot = await chain.snapshot()
    await serving.as_sender(user).deposit_fund(provider.address, value=5)  # to be dropped
    await asyncio.sleep(0.3)
    await chain.revert(snapshot)
    kept.append(await serving.as_sender(user).deposit_fund(provider.address, value=6))
    await chain.mine(3)
    await wait_indexed(indexer, kept[-1].block_number)

    assert published(await chain_events(js)) == expected(kept)
    assert indexer.follower.reorgs == 0
    await assert_redis_matches_chain(redis, serving)


@pytest.fixture
async def proxy(node: AnvilNode) -> AsyncIterator[TcpProxy]:
    forwarder = TcpProxy(node.port)
    await forwarder.start()
    yield forwarder
    await forwarder.stop()


async def readyz(port: int | None) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.json()


async def metrics_text(port: int | None) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        return await response.text()


async def test_rpc_down_then_up_resumes_without_missing_an_event(
    node: AnvilNode,
    private_w3: Web3Client,
    proxy: TcpProxy,
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    serving = await deploy(private_w3, node)
    provider, user = node_key(node, 1), node_key(node, 2)
    indexer = await start_indexer(proxy.url, serving.address)
    results = [await serving.as_sender(user).add_account(provider.address, (1, 2), value=10)]
    await wait_indexed(indexer, results[-1].block_number)
    assert (await readyz(indexer.health.port))[0] == 200

    await proxy.stop()
    results.append(await serving.as_sender(user).deposit_fund(provider.address, value=5))
    results.append(await serving.as_sender(user).request_refund(provider.address, 3))

    async def failing() -> bool:
        return indexer.follower.last_error is not None

    await wait_for(failing)
    status, body = await readyz(indexer.health.port)
    assert status == 503
    failed = body["failed"]
    assert isinstance(failed, dict)
    assert {"rpc", "follower"} <= failed.keys()

    await proxy.start()
    await wait_indexed(indexer, results[-1].block_number)

    async def recovered() -> bool:
        return indexer.follower.last_error is None

    await wait_for(recovered)
    assert (await readyz(indexer.health.port))[0] == 200
    lines = (await metrics_text(indexer.health.port)).splitlines()
    for name, label in (
        ("zg_indexer_head_lag_blocks{", ""),
        ("zg_indexer_last_indexed_block{", ""),
        ("zg_indexer_events_published_total{", 'type="AccountUpdatedV1"'),
        ("zg_indexer_rpc_errors_total{", 'kind="rpc"'),
    ):
        assert any(line.startswith(name) and label in line for line in lines), name
    assert published(await chain_events(js)) == expected(results)
    assert indexer.follower.duplicates == 0
    await assert_redis_matches_chain(redis, serving)
