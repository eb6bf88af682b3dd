# SPDX-License-Identifier: Apache-2.0
"""Fault drills on a private chain: a reorg drops the block with billing's settlement, the
RPC endpoint goes away while billing submits, and a settlement's FeesSettled events reach
billing before its receipt, the later chunk's first. Each ends with every fee settled once."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.integration.billing.conftest import (
    Stack,
    assert_paid_once,
    billing_settings,
    booked,
    build_stack,
    mining,
    publish_raw,
    running_billing,
    settled_once,
)
from tests.integration.conftest import node_keys
from tests.integration.polling import eventually
from tests.integration.tcpproxy import TcpProxy
from zg_billing.app import create_app as create_billing
from zg_billing.records import SettlementStore, Status
from zg_shared.chain import DevChain, TxResult, Web3Client
from zg_shared.chain.anvil import AnvilNode
from zg_shared.events import FeesSettledV1
from zg_shared.events.chain import chain_event_id

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


async def test_fees_settled_before_the_receipt_and_out_of_order_still_confirm(
    node: AnvilNode,
    private_w3: Web3Client,
    redis_url: str,
    nats_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Drill 1's settlement left unconfirmed: the indexer's FeesSettled events of a two-chunk
    settlement reached billing before its own receipt, the later chunk's first, which confirms
    the earlier chunk's requests in the book too; the earlier chunk's event must still count."""
    caplog.set_level(logging.INFO, logger="zg_billing.settler")
    # Confirmations 1 and no block after the settlement's: the indexer publishes none of its
    # FeesSettled, the test hands them to billing's consumer in the order it wants.
    async for stack in build_stack(
        private_w3, node_keys(node), redis_url, nats_url, confirmations=1
    ):
        user = stack.users[0]
        fees = [await stack.send(user) for _ in range(8)]  # two chunks of N=4
        async with running_billing(stack, threshold_fee_wei=10**30, sweep_interval_s=10**6) as app:
            chain = app.settler.chain
            monkeypatch.setattr(
                chain, "settle_fees", functools.partial(_receipt_last, stack, chain.settle_fees)
            )
            await eventually(functools.partial(booked, stack, 8), what="requests booked")
            assert await app.settler.settle_now(user.address) == [user.address]
            await eventually(
                functools.partial(_confirmed, stack), within_s=30, what="the settlement confirmed"
            )
            [confirmation] = await stack.confirmations()
            chunks = {(c["user"], c["final_nonce"], c["total_fee"]) for c in confirmation["chunks"]}
            on_chain = {(e.user, e.final_nonce, e.amount) for e in await stack.settled_on_chain()}
            assert chunks == on_chain
            records = SettlementStore(stack.redis)
            record = await records.get(confirmation["settlement_id"])
            assert record is not None
            assert record.status is Status.CONFIRMED
            assert await records.open_records() == []
        await assert_paid_once(stack, fees)
    # The later chunk's event confirming the earlier chunk's requests too is as planned: no error
    # line for an SRE's alert.
    settler = [r for r in caplog.records if r.name == "zg_billing.settler"]
    assert [r.getMessage() for r in settler if r.levelno >= logging.ERROR] == []
    assert any("came before its settlement's earlier" in r.getMessage() for r in settler)


async def _receipt_last(
    stack: Stack, settle_fees: Callable[..., Awaitable[TxResult]], *args: Any, **kwargs: Any
) -> TxResult:
    """Billing's `settle_fees`, whose receipt comes back only once billing has handled the
    transaction's FeesSettled events, the later chunk's first."""
    result = await settle_fees(*args, **kwargs)
    mined = [
        e
        for e in await stack.settled_on_chain()
        if e.position and e.position.transaction_hash == result.tx_hash
    ]
    assert sorted(e.final_nonce for e in mined) == [4, 8]
    for event in sorted(mined, key=lambda e: -e.final_nonce):
        await _consumed_by_billing(stack, event)
    return result


async def _confirmed(stack: Stack) -> bool:
    return bool(await stack.confirmations())


async def _consumed_by_billing(stack: Stack, event: Any) -> None:
    """Publishes the chain's FeesSettled `event` as the indexer would (its event id), and waits
    until billing's consumer has handled it."""
    assert event.position is not None
    message = FeesSettledV1(
        event_id=chain_event_id(event.position),
        position=event.position,
        user=event.user,
        provider=event.provider,
        amount=event.amount,
        final_nonce=event.final_nonce,
    )
    await publish_raw(stack, message, "ZG_CHAIN", "fees-settled")
