# SPDX-License-Identifier: Apache-2.0
"""Billing does not believe what the bus says about money (issue 12 item 3): each forged
event, published raw on the bus as anyone who reaches NATS could, leaves billing's state as it
was, and the account still settles to the wei."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.billing.conftest import (
    DEPOSIT,
    Stack,
    build_stack,
    running_billing,
    running_prover,
)
from tests.integration.polling import eventually
from zg_billing.app import BillingApp
from zg_billing.book import Book, bill_key
from zg_billing.records import SettlementRecord, SettlementStore, Status
from zg_shared.accounts import AccountState
from zg_shared.chain import LogPosition, Web3Client
from zg_shared.events import Event, FeesSettledV1, ProofFailedV1, ProofReadyV1

pytestmark = pytest.mark.slow
NEVER = {"threshold_fee_wei": 10**30, "sweep_interval_s": 10**6}
FORGED_HASH = "0x" + "ab" * 32


@pytest.fixture
async def unproven(
    w3: Web3Client, keys: list[LocalAccount], redis_url: str, nats_url: str
) -> AsyncIterator[Stack]:
    """The pipeline with no prover running: a settlement stays open until the test starts one."""
    async for built in build_stack(w3, keys, redis_url, nats_url, prover=False):
        yield built


async def publish_raw(stack: Stack, event: Event, stream: str, durable: str) -> None:
    """Publishes `event` as an outsider would, and waits until billing's consumer acked it."""
    ack = await stack.js.publish(
        event.SUBJECT,
        event.model_dump_json().encode(),
        headers={"Nats-Msg-Id": event.event_id},
    )

    async def consumed() -> bool:
        info = await stack.js.consumer_info(stream, f"billing-{durable}")
        return info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= ack.seq

    await eventually(consumed, within_s=30, what=f"billing consumed {event.SUBJECT}")


async def booked(stack: Stack, count: int) -> bool:
    return sum(s.unsettled_count for s in await Book(stack.redis).due_accounts()) == count


async def view(stack: Stack) -> tuple[AccountState, dict[bytes | str, bytes | str]]:
    """The user's account as the gateway sees it, and billing's book of it."""
    user = stack.users[0]
    bill = await stack.redis.hgetall(bill_key(user.address, stack.provider.address))
    return await stack.state(user), bill


async def settles_to_the_wei(stack: Stack, fees: list[int]) -> None:
    user = stack.users[0]

    async def done() -> bool:
        paid = sum(e.amount for e in await stack.settled_on_chain() if e.user == user.address)
        return paid == sum(fees) and (await stack.state(user)).unsettled == 0

    await eventually(done, what="the account settled")
    account = await stack.serving.get_account(user.address, stack.provider.address)
    assert account.nonce == len(fees)
    assert account.balance == DEPOSIT - sum(fees)
    assert (await stack.state(user)).settled_nonce == len(fees)


async def forged_position(stack: Stack, kind: str) -> LogPosition:
    if kind == "no such log":
        return LogPosition(
            block_number=1, block_hash=FORGED_HASH, transaction_hash=FORGED_HASH, log_index=0
        )
    # A real log of the contract (the user's AccountAdded), claimed to be a FeesSettled.
    head = await stack.w3.eth.block_number
    first = (await stack.serving.get_events(0, head))[-1]
    assert first.position is not None
    return first.position


@pytest.mark.parametrize("kind", ["no such log", "another log at a real position"])
async def test_a_forged_fees_settled_changes_nothing(stack: Stack, kind: str) -> None:
    user = stack.users[0]
    fees = [await stack.send(user) for _ in range(5)]
    async with running_billing(stack, **NEVER) as billing:
        await eventually(functools.partial(booked, stack, 5), what="requests booked")
        before = await view(stack)
        # The reproduction: billing dropped the 5 unsettled requests for good.
        forged = FeesSettledV1(
            event_id="forged-fees-settled",
            position=await forged_position(stack, kind),
            user=user.address,
            provider=stack.provider.address,
            amount=sum(fees),
            final_nonce=2**64 - 1,
        )
        await publish_raw(stack, forged, "ZG_CHAIN", "fees-settled")
        assert await view(stack) == before
        assert before[0].unsettled == sum(fees)

        await billing.settler.settle_now(user.address)
        await settles_to_the_wei(stack, fees)


async def open_settlement(stack: Stack, billing: BillingApp, count: int) -> SettlementRecord:
    """Billing seals the user's requests and asks for proofs (no prover runs yet)."""
    await eventually(functools.partial(booked, stack, count), what="requests booked")
    await billing.settler.settle_now(stack.users[0].address)
    store = SettlementStore(stack.redis)

    async def opened() -> bool:
        return bool(await store.open_records())

    await eventually(opened, what="a settlement opened")
    [record] = await store.open_records()
    assert record.status is Status.PROVING
    return record


async def test_a_forged_unretryable_proof_failure_writes_nothing_off(unproven: Stack) -> None:
    stack = unproven
    user = stack.users[0]
    fees = [await stack.send(user) for _ in range(3)]
    async with running_billing(stack, **NEVER) as billing:
        record = await open_settlement(stack, billing, 3)
        before = await view(stack)
        # A sniffed settlement id: before, billing wrote off the user's real requests.
        forged = ProofFailedV1(
            event_id="forged-proof-failed",
            settlement_id=record.id,
            provider=stack.provider.address,
            reason="the circuit rejects the requests",
            retryable=False,
            user=user.address,
        )
        await publish_raw(stack, forged, "ZG_SERVING", "proof-failed")
        assert await view(stack) == before
        assert await SettlementStore(stack.redis).get(record.id) == record

        async with running_prover(stack):
            await settles_to_the_wei(stack, fees)


async def test_a_forged_proof_and_a_squatted_event_id_do_not_stop_the_real_proof(
    unproven: Stack,
) -> None:
    stack = unproven
    user = stack.users[0]
    fees = [await stack.send(user) for _ in range(3)]
    async with running_billing(stack, **NEVER) as billing:
        record = await open_settlement(stack, billing, 3)
        # A proof of nothing under the id the prover used to choose (`proof-ready-{sid}`):
        # billing took it as the part's proofs, and JetStream dropped the real one.
        forged = ProofReadyV1(
            event_id=f"proof-ready-{record.id}",
            settlement_id=record.id,
            provider=stack.provider.address,
            proofs=(),
            backend="forged",
            circuit_size=4,
            prove_seconds=0.0,
        )
        await publish_raw(stack, forged, "ZG_SERVING", "proof-ready")
        assert await SettlementStore(stack.redis).get(record.id) == record

        async with running_prover(stack):
            await settles_to_the_wei(stack, fees)
