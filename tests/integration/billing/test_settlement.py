# SPDX-License-Identifier: Apache-2.0
"""Billing closes the loop on real servers: requests served by the gateway end as fees settled
on chain with real proofs, exactly once, through redelivery, a flushed Redis and a reverted
settlement."""

from __future__ import annotations

import pytest

from tests.integration.billing.conftest import DEPOSIT, Stack, running_billing
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from zg_billing.book import Book
from zg_billing.policy import Reason
from zg_prover.backends import select_backend
from zg_prover.service import ProverService
from zg_shared.chain import checksum
from zg_shared.events import RequestServedV1, UserBatch
from zg_shared.zk import SignedRequest

pytestmark = pytest.mark.slow


async def settled_total(stack: Stack) -> int:
    return sum(e.amount for e in await stack.settled_on_chain())


async def assert_settled_exactly(stack: Stack, fees: dict[str, list[int]]) -> None:
    """The chain paid each user's signed fees once, and every view agrees."""
    by_user: dict[str, int] = {}
    for event in await stack.settled_on_chain():
        by_user[event.user] = by_user.get(event.user, 0) + event.amount
    for user in stack.users:
        signed = fees.get(user.address, [])
        assert by_user.get(user.address, 0) == sum(signed)
        account = await stack.serving.get_account(user.address, stack.provider.address)
        assert account.nonce == len(signed)
        assert account.balance == DEPOSIT - sum(signed)
        state = await stack.state(user)
        assert state.unsettled == 0
        assert state.settled_nonce == len(signed)


async def test_served_requests_end_as_fees_settled_on_chain(stack: Stack) -> None:
    fees: dict[str, list[int]] = {u.address: [] for u in stack.users}
    async with running_billing(stack):
        for round_ in range(3):
            for user in stack.users:
                fees[user.address].append(await stack.send(user, "word " * (round_ + 2)))
        total = sum(map(sum, fees.values()))

        async def all_settled() -> bool:
            confirmed = sum(c["total_fee"] for c in await stack.confirmations())
            return confirmed == total and await _unsettled_zero(stack)

        await eventually(all_settled, what="every fee settled")

    await assert_settled_exactly(stack, fees)
    confirmed = await stack.confirmations()
    assert sum(c["total_fee"] for c in confirmed) == total
    on_chain = {(e.user, e.final_nonce, e.amount) for e in await stack.settled_on_chain()}
    in_events = {
        (chunk["user"], chunk["final_nonce"], chunk["total_fee"])
        for c in confirmed
        for chunk in c["chunks"]
    }
    assert in_events == on_chain


async def test_a_served_event_delivered_twice_is_settled_once(stack: Stack) -> None:
    user = stack.users[0]
    fees = {user.address: [await stack.send(user), await stack.send(user)]}
    await eventually(lambda: _served_count(stack, 2), what="events on the stream")
    # The same event again, under a new message id, so JetStream cannot drop it.
    first = (await _served(stack))[0]
    await stack.js.publish(
        RequestServedV1.SUBJECT,
        first.model_dump_json().encode(),
        headers={"Nats-Msg-Id": "redelivered-" + first.event_id},
    )
    async with running_billing(stack):
        await eventually(lambda: _total_is(stack, sum(fees[user.address])), what="settlement")
        await eventually(lambda: _unsettled_zero(stack), what="book emptied")
    await assert_settled_exactly(stack, fees)


async def test_a_flushed_redis_is_rebuilt_from_the_stream_and_the_chain(stack: Stack) -> None:
    fees: dict[str, list[int]] = {u.address: [] for u in stack.users}
    for user in stack.users:
        for _ in range(3):
            fees[user.address].append(await stack.send(user))
    await eventually(lambda: _served_count(stack, 6), what="events on the stream")

    # Billing books everything but is told never to settle; then Redis loses it all.
    async with running_billing(stack, threshold_fee_wei=10**30, sweep_interval_s=10**6) as idle:
        await eventually(lambda: _book_count(stack, 6), what="requests booked")
        assert await idle.settler.tick() == []
    await stack.redis.flushdb()

    async with running_billing(stack):
        total = sum(map(sum, fees.values()))
        await eventually(lambda: _total_is(stack, total), what="rebuilt and settled")
        await eventually(lambda: _unsettled_zero(stack), what="book emptied")
    await assert_settled_exactly(stack, fees)


async def test_a_refused_chunk_is_dropped_and_what_is_still_valid_settles(stack: Stack) -> None:
    user = stack.users[0]
    fees = {user.address: [await stack.send(user) for _ in range(6)]}
    await eventually(lambda: _served_count(stack, 6), what="events on the stream")

    # A settlement of nonces 1-4 will land on chain behind billing's back (say, a transaction
    # an earlier billing instance sent that was mined late).
    served = sorted(await _served(stack), key=lambda e: e.nonce)[:4]
    state = await stack.state(user)
    early = UserBatch(
        user=user.address,
        signer=state.signer,
        requests=tuple(
            SignedRequest.from_signature_hex(
                user=e.user, provider=e.provider, nonce=e.nonce, fee=e.fee, signature=e.signature
            )
            for e in served
        ),
    )
    service = ProverService(select_backend("auto", [4]))
    [proof] = await service.prove_batch(stack.provider.address, early, 4)

    never = {"threshold_fee_wei": 10**30, "sweep_interval_s": 10**6, "settle_full_chunks": False}
    async with running_billing(stack, **never) as app:
        await eventually(lambda: _book_count(stack, 6), what="requests booked")
        # Billing seals nonces 1-6 and asks for proofs; while they are made, the early
        # settlement lands. The contract refuses billing's first chunk (NonceTooLow); billing
        # drops the user's chunks, re-reads the chain and settles 5-6 alone.
        [summary] = await Book(stack.redis).due_accounts()
        assert summary.user == checksum(user.address)
        requested = await app.settler._settle([(summary, Reason.MANUAL)], now=0)
        assert [len(r.parts[0].requests) for r in requested] == [6]
        await stack.serving.settle_fees([proof.calldata])
        await eventually(
            lambda: _total_is(stack, sum(fees[user.address])),
            what="the rest settled",
        )
        await eventually(lambda: _unsettled_zero(stack), what="book emptied")

    await assert_settled_exactly(stack, fees)
    settled = await stack.settled_on_chain()
    assert [e.final_nonce for e in settled] == [4, 6]
    failed = [
        s for s in await _subjects(stack, {"serving.settlement.failed.v1"}) if not s["written_off"]
    ]
    assert failed
    assert failed[0]["reason"] == "ServingNonceTooLow"


async def _served(stack: Stack) -> list[RequestServedV1]:
    found = await _subjects(stack, {RequestServedV1.SUBJECT})
    return [RequestServedV1.model_validate(p) for p in found]


async def _subjects(stack: Stack, subjects: set[str]) -> list[dict[str, object]]:
    return [payload for _, payload in await stream_events(stack.js, subjects)]


async def _served_count(stack: Stack, count: int) -> bool:
    return len(await _served(stack)) >= count


async def _book_count(stack: Stack, count: int) -> bool:
    summaries = await _book(stack)
    return sum(summaries) >= count


async def _book(stack: Stack) -> list[int]:
    return [s.unsettled_count for s in await Book(stack.redis).due_accounts()]


async def _unsettled_zero(stack: Stack) -> bool:
    states = [await stack.state(u) for u in stack.users]
    return all(s.unsettled == 0 for s in states) and not any(await _book(stack))


async def _total_is(stack: Stack, expected: int) -> bool:
    return await settled_total(stack) == expected
