# SPDX-License-Identifier: Apache-2.0
"""zg_shared.periodic.repeating: the prover's in-progress acks and the tests' block mining."""

from __future__ import annotations

import asyncio

import pytest

from zg_shared.periodic import repeating


async def test_the_step_repeats_while_the_block_runs_and_stops_with_it() -> None:
    calls = 0
    thrice = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            thrice.set()

    async with repeating(0.01, step):
        await asyncio.wait_for(thrice.wait(), 10)
    after = calls
    await asyncio.sleep(0.05)  # five periods: a step still repeating would show here
    assert calls == after


async def test_a_failed_step_stops_the_repeats_and_is_raised_as_the_block_ends() -> None:
    calls = 0
    failed = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        failed.set()
        raise ConnectionError("NATS away")

    async def block() -> None:
        async with repeating(0.01, step):
            await asyncio.wait_for(failed.wait(), 10)
            await asyncio.sleep(0.05)  # five periods: no repeat after the failure

    with pytest.raises(ConnectionError, match="NATS away"):
        await block()
    assert calls == 1
