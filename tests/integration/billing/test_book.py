# SPDX-License-Identifier: Apache-2.0
"""Billing's book on a real Redis, next to the gateway's real ledger scripts: recording served
requests once, sealing only what no in-flight request can fall behind, confirming, writing off,
and rebuilding the gateway's view when Redis lost it."""

from __future__ import annotations

from typing import Literal

import pytest
from redis.asyncio import Redis

from zg_billing.book import DUE_KEY, Book, Recorded
from zg_gateway.ledger import Ledger, PaidRequest, Refusal
from zg_shared.accounts import AccountState, AccountStore, nonces_key
from zg_shared.chain import Account
from zg_shared.events import RequestServedV1

USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ETHER = 10**18
FEE = 3 * 10**15  # above 2^53 wei: amounts must stay exact
NOW = 1_700_000_000_000


@pytest.fixture
def store(redis: Redis) -> AccountStore:
    return AccountStore(redis)


@pytest.fixture
def book(redis: Redis) -> Book:
    return Book(redis)


@pytest.fixture
def ledger(redis: Redis) -> Ledger:
    return Ledger(redis)


async def open_account(store: AccountStore, balance: int = ETHER, nonce: int = 0) -> None:
    account = Account(
        user=USER,
        provider=PROVIDER,
        nonce=nonce,
        balance=balance,
        pending_refund=0,
        signer=(11, 22),
        refunds=(),
        additional_info="",
    )
    assert await store.apply_chain_account(account, block=1)


def served(
    nonce: int, *, fee: int = FEE, outcome: Literal["charged", "voided"] = "charged"
) -> RequestServedV1:
    return RequestServedV1(
        event_id=f"req-{nonce}",
        service="chat",
        user=USER,
        provider=PROVIDER,
        nonce=nonce,
        fee=fee,
        input_fee=fee,
        previous_output_fee=0,
        signature="ab" * 96,
        input_units=3,
        output_units=5,
        output_fee=7,
        outcome=outcome,
    )


async def serve(ledger: Ledger, nonce: int, *, finish: bool = True, charged: bool = True) -> None:
    """What the gateway does for one request: admit, and (unless still in flight) finish."""
    request = PaidRequest(
        user=USER, provider=PROVIDER, nonce=nonce, fee=FEE, input_fee=FEE, previous_output_fee=0
    )
    admission = await ledger.admit(request, reservation=0, debt_bound=ETHER, now_ms=NOW)
    assert admission.admitted, admission
    if finish:
        assert await ledger.finish(USER, PROVIDER, nonce, charged=charged, output_fee=7)


async def state(store: AccountStore) -> AccountState:
    found = await store.read(USER, PROVIDER)
    assert found is not None
    return found


async def test_a_request_is_recorded_once(store: AccountStore, ledger: Ledger, book: Book) -> None:
    await open_account(store)
    await serve(ledger, 1)

    first = await book.record(served(1), served_ms=NOW)
    again = await book.record(served(1), served_ms=NOW)

    assert first.outcome is Recorded.RECORDED
    assert not first.restored  # the gateway had booked it already
    assert again.outcome is Recorded.DUPLICATE
    [summary] = await book.due_accounts()
    assert (summary.unsettled_fee, summary.unsettled_count, summary.oldest_ms) == (FEE, 1, NOW)
    assert (await state(store)).unsettled == FEE  # unchanged by billing


async def test_seal_stops_below_a_request_in_flight_and_one_billing_has_not_seen(
    store: AccountStore, ledger: Ledger, book: Book
) -> None:
    await open_account(store)
    for nonce in (1, 2, 4, 5):
        await serve(ledger, nonce)
    await serve(ledger, 3, finish=False)  # still being served
    for nonce in (1, 2, 4, 5):
        await book.record(served(nonce), served_ms=NOW + nonce)

    sealed = await book.seal(USER, PROVIDER, "s1", max_requests=100)

    assert sealed.status == "ok"
    assert [r.nonce for r in sealed.requests] == [1, 2]
    assert sealed.signer == (11, 22)
    assert (await state(store)).sealed_nonce == 2
    # The gateway now refuses nonces at or below the seal...
    late = PaidRequest(
        user=USER, provider=PROVIDER, nonce=2, fee=FEE, input_fee=FEE, previous_output_fee=0
    )
    refused = await ledger.admit(late, reservation=0, debt_bound=ETHER, now_ms=NOW)
    assert refused.refusal is Refusal.NONCE_TOO_LOW
    # ...and the account is held until the settlement lets it go.
    assert (await book.seal(USER, PROVIDER, "s2", max_requests=100)).status == "busy"
    assert await book.release(USER, PROVIDER, "s1")

    # Nonce 3 finishes, but billing has not seen its event yet: the seal must wait for it.
    assert await ledger.finish(USER, PROVIDER, 3, charged=True, output_fee=7)
    waiting = await book.seal(USER, PROVIDER, "s2", max_requests=100)
    assert [r.nonce for r in waiting.requests] == [1, 2]
    assert await book.release(USER, PROVIDER, "s2")

    await book.record(served(3), served_ms=NOW + 3)
    everything = await book.seal(USER, PROVIDER, "s3", max_requests=100)
    assert [r.nonce for r in everything.requests] == [1, 2, 3, 4, 5]
    assert (await state(store)).sealed_nonce == 5


async def test_voided_requests_are_sealed_over_and_never_settled(
    store: AccountStore, ledger: Ledger, book: Book
) -> None:
    await open_account(store)
    await serve(ledger, 1)
    await serve(ledger, 2, charged=False)
    await serve(ledger, 3)
    await book.record(served(1), served_ms=NOW)
    await book.record(served(2, outcome="voided"), served_ms=NOW)
    await book.record(served(3), served_ms=NOW)

    sealed = await book.seal(USER, PROVIDER, "s1", max_requests=100)

    assert [r.nonce for r in sealed.requests] == [1, 3]
    assert (await state(store)).unsettled == 2 * FEE


async def test_a_batch_is_a_prefix_bounded_by_count_and_balance(
    store: AccountStore, ledger: Ledger, book: Book
) -> None:
    await open_account(store, balance=ETHER)
    for nonce in range(1, 6):
        await serve(ledger, nonce)
        await book.record(served(nonce), served_ms=NOW)

    by_count = await book.seal(USER, PROVIDER, "s1", max_requests=2)
    assert [r.nonce for r in by_count.requests] == [1, 2]
    await book.release(USER, PROVIDER, "s1")

    # The user's refund went through: the balance now covers only three requests.
    await open_account_balance(store, 3 * FEE + 1)
    by_balance = await book.seal(USER, PROVIDER, "s2", max_requests=100)
    assert [r.nonce for r in by_balance.requests] == [1, 2, 3]


async def open_account_balance(store: AccountStore, balance: int) -> None:
    account = Account(
        user=USER,
        provider=PROVIDER,
        nonce=0,
        balance=balance,
        pending_refund=0,
        signer=(11, 22),
        refunds=(),
        additional_info="",
    )
    assert await store.apply_chain_account(account, block=2)


async def test_confirm_takes_settled_fees_off_unsettled_once(
    store: AccountStore, ledger: Ledger, book: Book, redis: Redis
) -> None:
    await open_account(store)
    for nonce in (1, 2, 3):
        await serve(ledger, nonce)
        await book.record(served(nonce), served_ms=NOW + nonce)

    assert await book.confirm(USER, PROVIDER, final_nonce=2) == (2, 2 * FEE)
    assert await book.confirm(USER, PROVIDER, final_nonce=2) == (0, 0)

    after = await state(store)
    assert after.unsettled == FEE
    [summary] = await book.due_accounts()
    assert (summary.unsettled_fee, summary.unsettled_count, summary.oldest_ms) == (
        FEE,
        1,
        NOW + 3,
    )
    assert await book.confirm(USER, PROVIDER, final_nonce=3) == (1, FEE)
    assert await redis.zcard(DUE_KEY) == 0
    assert (await state(store)).unsettled == 0


async def test_requests_the_chain_settled_are_not_recorded_or_sealed_again(
    store: AccountStore, ledger: Ledger, book: Book
) -> None:
    await open_account(store)
    for nonce in (1, 2, 3):
        await serve(ledger, nonce)
        await book.record(served(nonce), served_ms=NOW)
    # The chain settled up to 2 (a confirmation this book never saw).
    await open_account(store, nonce=2)

    assert (await book.record(served(2), served_ms=NOW)).outcome is Recorded.SETTLED
    sealed = await book.seal(USER, PROVIDER, "s1", max_requests=100)

    assert [r.nonce for r in sealed.requests] == [3]
    assert (await state(store)).unsettled == FEE


async def test_write_off_releases_the_users_balance(
    store: AccountStore, ledger: Ledger, book: Book
) -> None:
    await open_account(store)
    for nonce in (1, 2):
        await serve(ledger, nonce)
        await book.record(served(nonce), served_ms=NOW)

    assert await book.write_off(USER, PROVIDER, [1]) == FEE

    assert (await state(store)).unsettled == FEE
    [summary] = await book.due_accounts()
    assert summary.unsettled_count == 1


async def test_recording_after_redis_lost_the_gateway_view_rebuilds_it(
    store: AccountStore, ledger: Ledger, book: Book, redis: Redis
) -> None:
    await open_account(store)
    for nonce in (1, 2):
        await serve(ledger, nonce)
    await redis.flushdb()
    await open_account(store)  # the chain view comes back first (indexer or loader)

    results = [await book.record(served(n), served_ms=NOW) for n in (1, 2)]

    assert all(r.restored for r in results)
    after = await state(store)
    assert after.unsettled == 2 * FEE
    assert after.output_debt == 2 * 7
    assert await redis.zcard(nonces_key(USER, PROVIDER)) == 2
    replay = PaidRequest(
        user=USER, provider=PROVIDER, nonce=2, fee=FEE, input_fee=FEE, previous_output_fee=0
    )
    refused = await ledger.admit(replay, reservation=0, debt_bound=ETHER, now_ms=NOW)
    assert refused.refusal is Refusal.NONCE_REUSED


async def test_nothing_is_recorded_for_an_account_redis_does_not_know(book: Book) -> None:
    assert (await book.record(served(1), served_ms=NOW)).outcome is Recorded.NO_ACCOUNT
