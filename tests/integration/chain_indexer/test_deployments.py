# SPDX-License-Identifier: Apache-2.0
"""A checkpoint from another deployment: the chain was started again from genesis (a fresh
anvil) and the contract landed at the same address, while Redis kept the old chain's
checkpoint. The indexer starts over from the new chain's views instead of taking the old
checkpoint for a reorg deeper than its journal."""

from __future__ import annotations

import asyncio
import time

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
from tests.integration.chain_indexer.test_follow import service
from tests.integration.conftest import node_key
from zg_shared.chain import AnvilNode, ServingClient
from zg_shared.deployment import DEPLOYMENT_KEY, identify
from zg_shared.events.chain import AccountUpdatedV1, ReorgDetectedV1


async def forget_the_deployment_stamps(redis: Redis, js: JetStreamContext) -> None:
    """State as it was before Redis and the streams named their deployment (else every
    service, the indexer included, would refuse to start on it)."""
    await redis.delete(DEPLOYMENT_KEY)
    info = await js.stream_info("ZG_CHAIN")
    info.config.description = ""
    await js.update_stream(info.config)


@pytest.mark.parametrize("named", [True, False], ids=["named", "from-before-names"])
async def test_a_checkpoint_from_another_chain_is_started_over(
    named: bool, js: JetStreamContext, redis: Redis, start_indexer: StartIndexer
) -> None:
    async with AnvilNode(accounts=10) as old:
        w3 = old.web3()
        serving = await ServingClient.deploy(w3, node_key(old, 0), lock_time=LOCK_TIME)
        provider = node_key(old, 1)
        await serving.as_sender(provider).add_or_update_service(service("a", provider.address))
        for index in (2, 3, 4):
            await serving.as_sender(node_key(old, index)).add_account(
                provider.address, (1, 2), value=9
            )
        indexer = await start_indexer(old.rpc_url, serving.address)
        await wait_indexed(indexer, int(await w3.eth.block_number))
        await indexer.stop()
        started = int((await w3.eth.get_block(0))["timestamp"])
        await w3.provider.disconnect()
    # anvil stamps its genesis with the second it started: a chain started within the same
    # second with the same settings would have the same genesis, indistinguishable.
    while time.time() < started + 1:  # noqa: ASYNC110 - a precondition, not a timing
        await asyncio.sleep(0.1)
    await forget_the_deployment_stamps(redis, js)
    if not named:
        await redis.delete("zg:indexer:deployment")

    async with AnvilNode(accounts=10) as new:
        w3 = new.web3()
        try:
            again = await ServingClient.deploy(w3, node_key(new, 0), lock_time=LOCK_TIME)
            assert again.address == serving.address
            await again.as_sender(node_key(new, 5)).add_account(provider.address, (3, 4), value=7)
            indexer = await start_indexer(new.rpc_url, again.address)
            identity = (await identify(w3, again.address)).model_dump_json()

            async def started_over() -> bool:
                return await indexer.follower.checkpoint.deployment() == identity

            # The old checkpoint is further on than this chain: wait for the new one first.
            await wait_for(started_over)
            late = await again.as_sender(node_key(new, 6)).add_account(
                provider.address, (5, 6), value=8
            )
            await wait_indexed(indexer, late.block_number)

            assert indexer.follower.reorgs == 0
            await assert_redis_matches_chain(redis, again)
            events = await chain_events(js)
            assert not [p for s, p in events if s == ReorgDetectedV1.SUBJECT]
            # The new chain's log after the start is published, with the new block's hash.
            published = [
                AccountUpdatedV1.model_validate(p)
                for s, p in events
                if s == AccountUpdatedV1.SUBJECT and p["user"] == node_key(new, 6).address
            ]
            block = await w3.eth.get_block(late.block_number)
            assert [u.position.block_hash for u in published] == ["0x" + block["hash"].hex()]
        finally:
            await w3.provider.disconnect()
