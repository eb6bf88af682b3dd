# SPDX-License-Identifier: Apache-2.0
"""Billing's active/standby lease on a real Redis: one holder at a time, each take with a
higher fencing token; a released lease is taken at once, a lapsed one after its TTL; the
deposed holder's check refuses, and its renewal calls `on_lost`."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tests.integration.polling import eventually
from zg_billing.lease import Deposed, Lease

PROVIDER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


async def test_one_holder_and_a_higher_token_for_each_take(redis: Redis) -> None:
    lost: list[str] = []
    a = Lease(redis, PROVIDER, 0.6, on_lost=lambda: lost.append("a"))
    b = Lease(redis, PROVIDER, 0.6, on_lost=lambda: lost.append("b"))
    assert await a.acquire() == 1
    assert await b.try_acquire() == 0  # the standby waits
    await a.check()

    await a.release()  # a graceful stop: the standby takes it at once
    assert await b.try_acquire() == 2
    with pytest.raises(Deposed):
        await a.check()
    await b.release()


async def test_a_frozen_leader_is_deposed_when_its_lease_lapses(redis: Redis) -> None:
    lost: list[str] = []
    a = Lease(redis, PROVIDER, 0.6, on_lost=lambda: lost.append("a"))
    b = Lease(redis, PROVIDER, 0.6, on_lost=lambda: lost.append("b"))
    assert await a.try_acquire() == 1  # taken, but never renewed: as if frozen
    standby = asyncio.create_task(b.acquire())
    assert await asyncio.wait_for(standby, 5) == 2  # after the TTL
    with pytest.raises(Deposed):
        await a.check()  # its settlement transaction is not sent

    # A renewing leader that finds the lease another's calls on_lost.
    a._renewing = asyncio.create_task(a._renew())
    await eventually(lambda: _nonempty(lost), 5, "the deposed leader told")
    assert lost == ["a"]
    await a.release()
    await b.check()  # b's lease untouched by a's release
    await b.release()


async def _nonempty(items: list[str]) -> bool:
    return bool(items)
