# SPDX-License-Identifier: Apache-2.0
"""A running gateway process driven with seeded random malformed requests (issue 11): every
one gets a 4xx (never a 5xx, never served), the process stays up throughout, and nothing is
charged: Redis and the chain are the same before and after.

`ZG_FUZZ_REQUESTS` (default 5,000) and `ZG_FUZZ_SEED` size and seed the run;
`bench/hostile_fuzz.py` runs a larger one."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis

from tests.integration.gateway.conftest import GatewayProcess, Provider
from tests.integration.gateway.fuzz import Hostile, HostileRequests
from tests.integration.rawhttp import raw_request
from zg_shared.accounts import AccountStore, redis_text
from zg_shared.chain import Web3Client, checksum
from zg_shared.registry import ServiceRegistry

pytestmark = pytest.mark.slow
REQUESTS = int(os.environ.get("ZG_FUZZ_REQUESTS", "5000"))
SEED = int(os.environ.get("ZG_FUZZ_SEED", "20261129"))
CONCURRENCY = 16


async def redis_state(redis: Redis) -> dict[str, Any]:
    """Every zgserve key and its value (heartbeats aside: they are renewed, not state)."""
    state: dict[str, Any] = {}
    async for raw in redis.scan_iter(match="zg:*", count=1000):
        key = redis_text(raw)
        if key.startswith("zg:gateway:alive:"):
            continue
        kind = redis_text(await redis.type(key))
        if kind == "hash":
            state[key] = await redis.hgetall(key)
        elif kind == "zset":
            state[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            state[key] = await redis.lrange(key, 0, -1)
        elif kind == "set":
            state[key] = await redis.smembers(key)
        else:
            state[key] = await redis.get(key)
    return state


async def chain_state(provider: Provider, w3: Web3Client) -> dict[str, Any]:
    accounts = {
        u.address: await provider.serving.get_account(u.address, provider.address)
        for u in provider.users
    }
    return {
        "block": await w3.eth.block_number,
        "provider": await w3.eth.get_balance(checksum(provider.address)),
        "accounts": {a: (x.balance, x.nonce, x.pending_refund) for a, x in accounts.items()},
    }


async def test_thousands_of_hostile_requests_get_4xx_and_change_nothing(
    provider: Provider,
    gateway_process: GatewayProcess,
    keys: list[LocalAccount],
    w3: Web3Client,
) -> None:
    # What the gateway loads on its own (each account's key, the registry), loaded first, so
    # that before and after compare what requests could change.
    for user in provider.users:
        await AccountStore(provider.redis).load_from_chain(
            provider.serving, user.address, provider.address
        )
    await ServiceRegistry(provider.redis).sync_from_chain(provider.serving, provider.address)
    redis_before = await redis_state(provider.redis)
    chain_before = await chain_state(provider, w3)

    requests = HostileRequests(SEED, provider.address, provider.users, "chat")
    queue: asyncio.Queue[Hostile] = asyncio.Queue()
    for _ in range(REQUESTS):
        queue.put_nowait(requests())
    statuses: Counter[int] = Counter()
    wrong: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            hostile = queue.get_nowait()
            status, body = await raw_request(
                gateway_process.url, hostile.path, hostile.headers, hostile.body, hostile.method
            )
            statuses[status] += 1
            if not 400 <= status < 500:
                wrong.append(f"{status} for {hostile.defect} {hostile.path}: {body[:200]!r}")
            if statuses.total() % 500 == 0:
                assert gateway_process.alive, f"the gateway died after {statuses.total()}"

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.monotonic() - started
    print(f"{REQUESTS} hostile requests in {elapsed:.1f} s: {dict(sorted(statuses.items()))}")

    assert gateway_process.alive
    assert wrong == [], "\n".join(wrong[:20])
    assert statuses.total() == REQUESTS
    assert await redis_state(provider.redis) == redis_before
    assert await chain_state(provider, w3) == chain_before
    assert await provider.served_events() == []
    log = gateway_process.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert "internal_error" not in log
