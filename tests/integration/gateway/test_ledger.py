# SPDX-License-Identifier: Apache-2.0
"""The gateway's atomic admission and finish scripts on a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from zg_gateway.ledger import Ledger, PaidRequest, Refusal
from zg_shared.accounts import AccountState, AccountStore, inflight_key, nonces_key
from zg_shared.chain import Account
from zg_shared.lua import nonce_member

USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROVIDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ETHER = 10**18
BOUND = 10 * ETHER
NOW = 1_700_000_000_000


@pytest.fixture
def store(redis: Redis) -> AccountStore:
    return AccountStore(redis)


@pytest.fixture
def ledger(redis: Redis) -> Ledger:
    return Ledger(redis)


async def open_account(
    store: AccountStore,
    balance: int,
    pending: int = 0,
    nonce: int = 0,
    signer: tuple[int, int] = (1, 2),
    block: int = 1,
) -> None:
    """The indexer applies the user's account as the chain holds it at `block`."""
    account = Account(
        user=USER,
        provider=PROVIDER,
        nonce=nonce,
        balance=balance,
        pending_refund=pending,
        signer=signer,
        refunds=(),
        additional_info="",
    )
    assert await store.apply_chain_account(account, block=block)


def paid(nonce: int, input_fee: int = 100, previous: int = 0) -> PaidRequest:
    return PaidRequest(
        user=USER,
        provider=PROVIDER,
        nonce=nonce,
        fee=input_fee + previous,
        input_fee=input_fee,
        previous_output_fee=previous,
    )


async def state(store: AccountStore) -> AccountState:
    found = await store.read(USER, PROVIDER)
    assert found is not None
    return found


async def test_admission_reserves_and_finish_books_the_output_fee(
    store: AccountStore, ledger: Ledger
) -> None:
    await open_account(store, balance=ETHER)

    admitted = await ledger.admit(
        paid(1, input_fee=100), reservation=500, debt_bound=BOUND, now_ms=NOW
    )

    assert admitted.admitted
    assert admitted.remaining == ETHER - 600
    s = await state(store)
    assert (s.unsettled, s.reserved, s.output_debt) == (100, 500, 0)
    assert await ledger.finish(USER, PROVIDER, 1, charged=True, output_fee=320)
    s = await state(store)
    assert (s.unsettled, s.reserved, s.output_debt) == (100, 0, 320)
    # The next request pays that debt as its previous output fee.
    assert (await ledger.admit(paid(2, 100, previous=320), 500, BOUND, now_ms=NOW)).admitted
    s = await state(store)
    assert (s.unsettled, s.reserved, s.output_debt) == (520, 500, 0)


async def test_a_second_finish_changes_nothing(store: AccountStore, ledger: Ledger) -> None:
    await open_account(store, balance=ETHER)
    await ledger.admit(paid(1), 500, BOUND, now_ms=NOW)
    assert await ledger.finish(USER, PROVIDER, 1, charged=True, output_fee=10)
    assert not await ledger.finish(USER, PROVIDER, 1, charged=True, output_fee=10)
    assert (await state(store)).output_debt == 10


async def test_a_voided_request_costs_nothing_and_owes_its_debt_again(
    store: AccountStore, ledger: Ledger
) -> None:
    await open_account(store, balance=ETHER)
    await ledger.admit(paid(1, 100), 500, BOUND, now_ms=NOW)
    await ledger.finish(USER, PROVIDER, 1, charged=True, output_fee=70)
    await ledger.admit(paid(2, 100, previous=70), 500, BOUND, now_ms=NOW)

    await ledger.finish(USER, PROVIDER, 2, charged=False, output_fee=999)

    s = await state(store)
    assert (s.unsettled, s.reserved, s.output_debt) == (100, 0, 70)
    refused = await ledger.admit(paid(2, 100, previous=70), 500, BOUND, now_ms=NOW)
    assert refused.refusal is Refusal.NONCE_REUSED


@pytest.mark.parametrize(
    ("nonce", "settled", "sealed", "refusal"),
    [
        (5, 5, 0, Refusal.NONCE_TOO_LOW),
        (5, 0, 7, Refusal.NONCE_TOO_LOW),
        (3, 4, 2, Refusal.NONCE_TOO_LOW),
    ],
)
async def test_nonces_at_or_below_the_settled_or_sealed_nonce_are_refused(
    redis: Redis,
    store: AccountStore,
    ledger: Ledger,
    nonce: int,
    settled: int,
    sealed: int,
    refusal: Refusal,
) -> None:
    await open_account(store, balance=ETHER, nonce=settled)
    await redis.hset(f"zg:acct:{{{PROVIDER.lower()}:{USER.lower()}}}", "sealed_nonce", sealed)
    result = await ledger.admit(paid(nonce), 500, BOUND, now_ms=NOW)
    assert result.refusal is refusal
    assert result.detail == (max(settled, sealed),)


async def test_refusals_change_nothing(redis: Redis, store: AccountStore, ledger: Ledger) -> None:
    await open_account(store, balance=1000, pending=300)
    await ledger.admit(paid(1, 100), 200, BOUND, now_ms=NOW)
    before = await state(store)
    members_before = await redis.zrange(nonces_key(USER, PROVIDER), 0, -1)

    outcomes = [
        await ledger.admit(paid(1, 100), 200, BOUND, now_ms=NOW),  # reused
        await ledger.admit(
            paid(2, 100, previous=1), 200, BOUND, now_ms=NOW
        ),  # pays debt it does not owe
        await ledger.admit(paid(3, 301), 100, BOUND, now_ms=NOW),  # 100+200 + 301+100 > 700
    ]

    assert [o.refusal for o in outcomes] == [
        Refusal.NONCE_REUSED,
        Refusal.OVERPAID,
        Refusal.INSUFFICIENT_BALANCE,
    ]
    assert outcomes[2].detail == (700, 701)
    assert await state(store) == before
    assert await redis.zrange(nonces_key(USER, PROVIDER), 0, -1) == members_before


async def test_debt_above_the_bound_is_refused(store: AccountStore, ledger: Ledger) -> None:
    await open_account(store, balance=ETHER)
    await ledger.admit(paid(1), 0, BOUND, now_ms=NOW)
    await ledger.finish(USER, PROVIDER, 1, charged=True, output_fee=1000)
    assert (
        await ledger.admit(paid(2), 0, debt_bound=999, now_ms=NOW)
    ).refusal is Refusal.DEBT_TOO_HIGH
    assert (await ledger.admit(paid(3, previous=1), 0, debt_bound=999, now_ms=NOW)).admitted


async def test_an_unknown_account_is_refused(ledger: Ledger) -> None:
    assert (await ledger.admit(paid(1), 0, BOUND, now_ms=NOW)).refusal is Refusal.NO_ACCOUNT


async def test_amounts_beyond_doubles_stay_exact(store: AccountStore, ledger: Ledger) -> None:
    balance = 10**24 + 1  # far above 2^53 and 2^63
    await open_account(store, balance=balance)
    fee = 2**60 + 7
    result = await ledger.admit(paid(2**64 - 1, fee), reservation=3, debt_bound=BOUND, now_ms=NOW)
    assert result.admitted
    assert result.remaining == balance - fee - 3
    assert (await state(store)).unsettled == fee


async def test_one_nonce_sent_100_times_at_once_is_served_once(
    redis: Redis, store: AccountStore, ledger: Ledger
) -> None:
    await open_account(store, balance=ETHER)
    results = await asyncio.gather(
        *(ledger.admit(paid(42), 10, BOUND, now_ms=NOW) for _ in range(100))
    )
    assert sum(r.admitted for r in results) == 1
    assert {r.refusal for r in results if not r.admitted} == {Refusal.NONCE_REUSED}
    s = await state(store)
    assert (s.unsettled, s.reserved) == (100, 10)
    assert await redis.zcard(inflight_key(USER, PROVIDER)) == 1


async def test_a_balance_for_ten_requests_admits_ten_of_fifty(
    store: AccountStore, ledger: Ledger
) -> None:
    # Each request needs its input fee (100) plus its reservation (400): 10 fit in 5000.
    await open_account(store, balance=5000)
    results = await asyncio.gather(
        *(ledger.admit(paid(n), 400, BOUND, now_ms=NOW) for n in range(1, 51))
    )
    admitted = [r for r in results if r.admitted]
    assert len(admitted) == 10
    s = await state(store)
    assert (s.unsettled, s.reserved) == (1000, 4000)
    assert s.spendable == 0


async def test_requests_whose_gateway_died_are_found_and_voided(
    redis: Redis, store: AccountStore, ledger: Ledger
) -> None:
    await open_account(store, balance=ETHER)
    await ledger.admit(paid(1), 50, BOUND, now_ms=NOW - 60_000)
    await ledger.admit(paid(2), 50, BOUND, now_ms=NOW)

    stale = [s async for s in ledger.stale(older_than_ms=NOW - 30_000)]

    assert [(s.user, s.provider, s.nonce) for s in stale] == [(USER.lower(), PROVIDER.lower(), 1)]
    assert await ledger.finish(stale[0].user, stale[0].provider, stale[0].nonce, charged=False)
    s = await state(store)
    assert (s.unsettled, s.reserved) == (100, 50)
    assert await redis.zrange(inflight_key(USER, PROVIDER), 0, -1) == [nonce_member(2).encode()]


async def test_a_new_key_signs_above_every_nonce_of_the_key_it_replaced(
    store: AccountStore, ledger: Ledger
) -> None:
    """After a rotation the new key's requests may not sit below the old key's in nonce order
    (billing settles them in that order, and the contract takes the old key only for the lock
    time); an old-key request checked just before the indexer applied the rotation is refused
    once the new key has been admitted."""
    old, new = (1, 2), (3, 4)
    await open_account(store, balance=ETHER)
    assert (await ledger.admit(paid(5), 0, BOUND, NOW, signer=old)).admitted
    assert (await ledger.admit(paid(9), 0, BOUND, NOW, signer=old)).admitted
    await open_account(store, balance=ETHER, signer=new, block=2)  # the indexer saw the rotation

    below = await ledger.admit(paid(7), 0, BOUND, NOW, signer=new)
    assert (below.refusal, below.detail) == (Refusal.NONCE_TOO_LOW, (9,))
    assert (await ledger.admit(paid(10), 0, BOUND, NOW, signer=new)).admitted
    assert (await ledger.admit(paid(8), 0, BOUND, NOW, signer=new)).refusal is (
        Refusal.NONCE_TOO_LOW
    )
    late = await ledger.admit(paid(20), 0, BOUND, NOW, signer=old)
    assert late.refusal is Refusal.INVALID_SIGNATURE
    assert (await state(store)).unsettled == 300  # nonces 5, 9 and 10
