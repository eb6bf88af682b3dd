# SPDX-License-Identifier: Apache-2.0
"""The policy fills chunks (docs/billing.md, "When an account is due"): an account is settled
once it holds a whole chunk of the largest size, only its whole chunks; an account half way to
due rides along with a settlement that goes out anyway, in the same transaction; a younger
one with less waits. On real servers with N=4 keys; the fee threshold, the age rule and the
sweep are set never to fire, so only the chunk rules decide."""

from __future__ import annotations

import pytest

from tests.integration.billing.conftest import Stack, running_billing
from tests.integration.polling import eventually
from zg_billing.book import Book

pytestmark = pytest.mark.slow
CHUNK_RULES_ONLY = {
    "threshold_fee_wei": 10**30,
    "sweep_interval_s": 10**6,
    "max_age_lock_fraction": 1.0,
}


async def nonces(stack: Stack) -> list[int]:
    return [
        (await stack.serving.get_account(u.address, stack.provider.address)).nonce
        for u in stack.users
    ]


async def booked(stack: Stack) -> dict[str, int]:
    return {s.user: s.unsettled_count for s in await Book(stack.redis).due_accounts()}


async def test_full_chunks_settle_and_a_half_full_account_joins_them(stack: Stack) -> None:
    a, b = stack.users
    async with running_billing(stack, **CHUNK_RULES_ONLY) as billing:
        # b: one request, a quarter of a chunk. a: five, one whole chunk and one more.
        fees_b = [await stack.send(b)]
        await eventually(lambda: _booked_is(stack, {b.address: 1}), what="b's request booked")
        fees_a = [await stack.send(a) for _ in range(5)]

        async def a_chunk_settled() -> bool:
            return await nonces(stack) == [4, 0]

        await eventually(a_chunk_settled, what="a's whole chunk settled")
        # a's fifth request keeps filling the next chunk; b is too far from due to join.
        await eventually(
            lambda: _booked_is(stack, {a.address: 1, b.address: 1}), what="the rest booked"
        )
        assert await billing.settler.tick() == []
        assert await nonces(stack) == [4, 0]

        # b reaches half a chunk, then a fills its second chunk: one transaction takes both.
        fees_b.append(await stack.send(b))
        await eventually(lambda: _booked_is(stack, {a.address: 1, b.address: 2}), what="b")
        fees_a += [await stack.send(a) for _ in range(3)]

        async def both_settled() -> bool:
            return await nonces(stack) == [8, 2]

        await eventually(both_settled, what="a's second chunk and b's two requests settled")

    settled = await stack.settled_on_chain()
    assert [(e.user, e.final_nonce) for e in settled] == [
        (a.address, 4),
        (a.address, 8),  # the due account first, then the one that joined
        (b.address, 2),
    ]
    assert [e.amount for e in settled] == [sum(fees_a[:4]), sum(fees_a[4:]), sum(fees_b)]
    tx = [e.position.transaction_hash if e.position else "" for e in settled]
    assert tx[0] != tx[1]
    assert tx[1] == tx[2]  # b joined a's settlement: one settleFees call


async def _booked_is(stack: Stack, expected: dict[str, int]) -> bool:
    return await booked(stack) == expected
