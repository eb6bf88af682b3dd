# SPDX-License-Identifier: Apache-2.0
"""Fault drills on a private chain: a reorg drops the block with billing's settlement, and the
RPC endpoint goes away while billing submits. Each ends with every fee settled once."""

from __future__ import annotations

import asyncio
import functools

import pytest

from tests.integration.billing.conftest import (
    Stack,
    assert_paid_once,
    billing_settings,
    build_stack,
    mining,
    running_billing,
    settled_once,
)
from tests.integration.conftest import node_keys
from tests.integration.polling import eventually
from tests.integration.tcpproxy import TcpProxy
from zg_billing.app import create_app as create_billing
from zg_shared.chain import DevChain, Web3Client
from zg_shared.chain.anvil import AnvilNode

pytestmark = pytest.mark.slow


async def test_a_reorg_that_drops_the_settlement_block_is_settled_again(
    node: AnvilNode, private_w3: Web3Client, redis_url: str, nats_url: str
) -> None:
    chain = DevChain(private_w3)
    async for stack in build_stack(
        private_w3, node_keys(node), redis_url, nats_url, confirmations=2
    ):
        user = stack.users[0]
        fees = [await stack.send(user) for _ in range(3)]
        fork_point = await chain.snapshot()
        async with running_billing(stack, confirm_timeout_s=3.0):
            # Billing settles; before the block is two deep, the chain reorganises without it.
            await eventually(functools.partial(_on_chain, stack), what="the settlement mined")
            await chain.revert(fork_point)
            await chain.mine(3)
            assert not await _on_chain(stack)
            async with mining(chain):
                await eventually(functools.partial(settled_once, stack, fees), what="settled again")
        await assert_paid_once(stack, fees)


async def test_the_rpc_endpoint_down_while_billing_submits_loses_nothing(
    node: AnvilNode,
    private_w3: Web3Client,
    redis_url: str,
    nats_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = TcpProxy(node.port)
    await proxy.start()
    try:
        async for stack in build_stack(private_w3, node_keys(node), redis_url, nats_url):
            user = stack.users[0]
            async with running_billing(stack, rpc_url=proxy.url):
                await proxy.stop()
                fees = [await stack.send(user) for _ in range(3)]

                async def submission_failed() -> bool:
                    return "waits for the chain" in caplog.text

                # Billing seals, the proof arrives and sending it fails: the proof-ready event
                # is redelivered, with every part already in the record (it once did nothing).
                await eventually(submission_failed, what="a submission refused by the outage")
                assert not await _on_chain(stack)
                await proxy.start()
                await eventually(
                    functools.partial(settled_once, stack, fees), what="settled after outage"
                )
            await assert_paid_once(stack, fees)
    finally:
        await proxy.stop()


async def _on_chain(stack: Stack) -> bool:
    return bool(await stack.settled_on_chain())


async def test_billing_started_before_its_chain_waits_for_it(
    node: AnvilNode, private_w3: Web3Client, redis_url: str, nats_url: str
) -> None:
    proxy = TcpProxy(node.port)  # not started: the endpoint refuses connections
    try:
        async for stack in build_stack(private_w3, node_keys(node), redis_url, nats_url):
            app = create_billing(billing_settings(stack, rpc_url=proxy.url))
            starting = asyncio.create_task(app.start())
            await asyncio.sleep(2)
            assert not starting.done()  # waiting, not crashed
            await proxy.start()
            await asyncio.wait_for(starting, 60)
            try:
                user = stack.users[0]
                fees = [await stack.send(user)]
                await eventually(functools.partial(settled_once, stack, fees), what="settled")
            finally:
                await app.stop()
    finally:
        await proxy.stop()
