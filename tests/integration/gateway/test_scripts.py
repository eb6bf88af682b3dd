# SPDX-License-Identifier: Apache-2.0
"""Script calls of concurrent requests sent in shared pipelines, on a real Redis: each gets its
own reply, one call's error stays its own, and a Redis that lost its scripts is handled."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tests.integration.gateway.test_ledger import BOUND, NOW, open_account, paid
from zg_gateway.ledger import Ledger
from zg_gateway.scripts import ScriptRunner
from zg_shared.accounts import AccountStore

ECHO = "return {KEYS[1], ARGV[1]}"
COUNT = "return redis.call('INCR', KEYS[1])"
FAIL_ON_ODD = "if tonumber(ARGV[1]) % 2 == 1 then return redis.error_reply('odd') end return 'even'"


async def test_concurrent_calls_each_get_their_own_reply(redis: Redis) -> None:
    run = ScriptRunner(redis)
    echo, count = run.register(ECHO), run.register(COUNT)
    replies = await asyncio.gather(*(run(echo, [f"k{i}"], [i]) for i in range(200)))
    assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(200)]
    counts = await asyncio.gather(*(run(count, ["counter"], []) for _ in range(200)))
    assert sorted(counts) == list(range(1, 201))  # each INCR ran once, atomically


async def test_an_error_fails_only_its_own_call(redis: Redis) -> None:
    run = ScriptRunner(redis)
    script = run.register(FAIL_ON_ODD)
    results = await asyncio.gather(
        *(run(script, [], [i]) for i in range(10)), return_exceptions=True
    )
    for i, result in enumerate(results):
        if i % 2:
            assert isinstance(result, ResponseError)
        else:
            assert result == b"even"


async def test_scripts_lost_by_redis_are_loaded_again(redis: Redis) -> None:
    run = ScriptRunner(redis)
    echo = run.register(ECHO)
    assert await run(echo, ["a"], [1]) == [b"a", b"1"]
    await redis.script_flush()
    replies = await asyncio.gather(*(run(echo, ["b"], [i]) for i in range(20)))
    assert replies == [[b"b", str(i).encode()] for i in range(20)]
    await redis.script_flush()
    assert await run(echo, ["c"], [2]) == [b"c", b"2"]  # alone in its turn: sent directly


async def test_the_ledger_through_the_runner_serves_a_nonce_once(redis: Redis) -> None:
    await open_account(AccountStore(redis), balance=10**18)
    ledger = Ledger(redis, ScriptRunner(redis))
    admitted = await asyncio.gather(*(ledger.admit(paid(7), 1000, BOUND, NOW) for _ in range(100)))
    assert sum(a.admitted for a in admitted) == 1
