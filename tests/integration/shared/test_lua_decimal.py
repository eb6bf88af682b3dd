# SPDX-License-Identifier: Apache-2.0
"""The Lua decimal arithmetic agrees with Python's integers, on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from zg_shared.lua import DECIMAL_LIB, nonce_member

SCRIPT = (
    DECIMAL_LIB
    + """
return {dadd(ARGV[1], ARGV[2]), dcmp(ARGV[1], ARGV[2]), dmax(ARGV[1], ARGV[2]),
        (dcmp(ARGV[1], ARGV[2]) >= 0) and dsub(ARGV[1], ARGV[2]) or '-', nonce_member(ARGV[1])}
"""
)
wei = st.one_of(st.integers(0, 10**4), st.integers(0, 2**64), st.integers(0, 2**256 - 1))


@pytest.fixture(scope="module")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def run(redis: Redis, a: int, b: int) -> list[str]:
    out = await redis.eval(SCRIPT, 0, str(a), str(b))
    return [v.decode() if isinstance(v, bytes) else str(v) for v in out]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (0, 0),
        (9_999_999, 1),
        (10**18, 10**18 - 1),
        (2**53 + 1, 1),
        (2**256 - 1, 2**256 - 2),
        (5, 0),
    ],
)
async def test_edges(redis: Redis, a: int, b: int) -> None:
    total, order, biggest, diff, _ = await run(redis, a, b)
    assert int(total) == a + b
    assert int(order) == (a > b) - (a < b)
    assert int(biggest) == max(a, b)
    assert int(diff) == a - b


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=wei, b=wei)
async def test_random_amounts(redis: Redis, a: int, b: int) -> None:
    total, order, biggest, diff, _ = await run(redis, a, b)
    assert int(total) == a + b
    assert int(order) == (a > b) - (a < b)
    assert int(biggest) == max(a, b)
    assert diff == (str(a - b) if a >= b else "-")


async def test_nonce_members_sort_like_numbers(redis: Redis) -> None:
    for nonce in (0, 7, 2**53 + 1, 2**64 - 1):
        *_, member = await run(redis, nonce, 0)
        assert member == nonce_member(nonce)
    assert sorted(nonce_member(n) for n in (10, 9, 2**64 - 1, 100)) == [
        nonce_member(n) for n in (9, 10, 100, 2**64 - 1)
    ]
