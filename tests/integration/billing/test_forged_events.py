# SPDX-License-Identifier: Apache-2.0
"""Billing does not believe what the bus says about money (issue 12 item 3): each forged
event, published raw on the bus as anyone who reaches NATS could, leaves billing's state as it
was, and the account still settles to the wei."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount

from tests.integration.billing.conftest import (
    DEPOSIT,
    Stack,
    booked,
    build_stack,
    mining,
    publish_raw,
    running_billing,
    running_prover,
)
from tests.integration.conftest import node_keys
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from zg_billing.app import BillingApp
from zg_billing.book import Book, bill_key
from zg_billing.records import SettlementRecord, SettlementStore, Status
from zg_gateway.receipts import ReceiptSigner
from zg_shared.accounts import AccountState
from zg_shared.chain import DevChain, LogPosition, Web3Client
from zg_shared.chain.anvil import AnvilNode
from zg_shared.events import (
    FeesSettledV1,
    ProofFailedV1,
    ProofReadyV1,
    RefundRequestedV1,
    RequestServedV1,
    chain_event_id,
)

pytestmark = pytest.mark.slow
# Nothing makes an account due by itself: no threshold, no sweep, no full-chunk rule (five
# requests fill a chunk of 4, which the rule would settle at once).
NEVER = {"threshold_fee_wei": 10**30, "sweep_interval_s": 10**6, "settle_full_chunks": False}
FORGED_HASH = "0x" + "ab" * 32


@pytest.fixture
async def unproven(
    w3: Web3Client, keys: list[LocalAccount], redis_url: str, nats_url: str
) -> AsyncIterator[Stack]:
    """The pipeline with no prover running: a settlement stays open until the test starts one."""
    async for built in build_stack(w3, keys, redis_url, nats_url, prover=False):
        yield built


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


@pytest.mark.parametrize("signed_by", ["nobody", "another key"])
async def test_a_forged_served_event_cannot_seal_an_account(stack: Stack, signed_by: str) -> None:
    user = stack.users[0]
    fees = [await stack.send(user)]
    async with running_billing(stack, **NEVER) as billing:
        await eventually(functools.partial(booked, stack, 1), what="the request booked")
        before = await view(stack)
        # Before, billing booked this voided nonce 2^64-1 into the gateway's view: every later
        # request was refused as nonce_too_low, for good.
        [real] = [
            RequestServedV1.model_validate(p)
            for _, p in await stream_events(stack.js, {RequestServedV1.SUBJECT})
        ]
        forged = real.model_copy(
            update={
                "event_id": "forged-served",
                "nonce": 2**64 - 1,
                "outcome": "voided",
                "attestation": "",
            }
        )
        if signed_by == "another key":
            forged = ReceiptSigner(EthAccount.create()).attest(forged)
        await publish_raw(stack, forged, "ZG_SERVING", "served")
        assert await view(stack) == before

        fees.append(await stack.send(user))  # accepted: the account is not sealed
        await eventually(functools.partial(booked, stack, 2), what="the next request booked")
        await billing.settler.settle_now(user.address)
        await settles_to_the_wei(stack, fees)


async def test_a_squatted_chain_event_id_does_not_hold_the_settlement(
    node: AnvilNode, private_w3: Web3Client, redis_url: str, nats_url: str
) -> None:
    """A chain event's id is public once its block is mined: someone who reads the block can
    publish under it before the indexer (which waits for confirmations), and JetStream drops
    the real FeesSettled as a duplicate. Before, billing then waited for it for good, the
    account held by the settlement; now it confirms the chunk from the chain once deep."""
    chain = DevChain(private_w3)
    async for stack in build_stack(
        private_w3, node_keys(node), redis_url, nats_url, confirmations=2
    ):
        user = stack.users[0]
        fees = [await stack.send(user) for _ in range(3)]
        async with running_billing(stack, confirmations=2, confirm_timeout_s=2.0):
            await eventually(functools.partial(mined, stack), what="the settlement mined")
            [settled] = await stack.settled_on_chain()
            assert settled.position is not None
            squat = FeesSettledV1(
                event_id=chain_event_id(settled.position),
                position=settled.position,
                user=user.address,
                provider=stack.provider.address,
                amount=settled.amount + 1,
                final_nonce=settled.final_nonce,
            )
            await publish_raw(stack, squat, "ZG_CHAIN", "fees-settled")
            assert (await stack.state(user)).unsettled == sum(fees)
            async with mining(chain):
                await settles_to_the_wei(stack, fees)
                await eventually(
                    functools.partial(confirmed_fee_is, stack, sum(fees)),
                    what="serving.settlement.confirmed",
                )


async def mined(stack: Stack) -> bool:
    return bool(await stack.settled_on_chain())


async def confirmed_fee_is(stack: Stack, total: int) -> bool:
    return sum(int(c["total_fee"]) for c in await stack.confirmations()) == total


async def test_a_forged_refund_request_settles_nothing(stack: Stack) -> None:
    """A refund request makes billing settle the account at once (gas): a forged one could
    make it settle after every request. Only one the chain has is acted on."""
    user = stack.users[0]
    fees = [await stack.send(user) for _ in range(2)]
    async with running_billing(stack, **NEVER):
        await eventually(functools.partial(booked, stack, 2), what="requests booked")
        forged = RefundRequestedV1(
            event_id="forged-refund",
            position=await forged_position(stack, "no such log"),
            user=user.address,
            provider=stack.provider.address,
            index=0,
            amount=1,
            unlock_at=2**40,
        )
        await publish_raw(stack, forged, "ZG_CHAIN", "refund-requested")
        assert [s.due_reason for s in await Book(stack.redis).due_accounts()] == [""]

        # The user's real refund request: billing settles before it unlocks.
        await stack.serving.as_sender(user.key).request_refund(stack.provider.address, 1)
        await settles_to_the_wei(stack, fees)
