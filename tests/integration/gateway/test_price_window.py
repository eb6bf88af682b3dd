# SPDX-License-Identifier: Apache-2.0
"""The prices a gateway charges when the registered ones change (zg_gateway/prices.py), on a
real Redis with the gateway's own clock moved by hand: a rise only after the grace period, a
drop at once, and the old prices shared by every process of the provider, so one restarted
within the period charges alike."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis

from zg_gateway.config import GatewaySettings
from zg_gateway.service import SERVICE_CACHE_S, GatewayService
from zg_shared.chain import Service
from zg_shared.registry import ServiceRegistry

GRACE_S = 30.0
NAME = "chat"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def gateway(
    redis: Redis,
    keys: list[LocalAccount],
    redis_url: str,
    clock: Clock,
    grace_s: float = GRACE_S,
) -> GatewayService:
    """A gateway process with no chain: the terms come from the registry in Redis."""
    settings = GatewaySettings(
        environment="test",
        provider_address=keys[1].address,
        receipt_private_key=keys[2].key.hex(),
        redis_url=redis_url,
        nats_url="nats://127.0.0.1:1",
        backends={NAME: "http://127.0.0.1:1/v1"},
        price_rise_grace_s=grace_s,
        health_port=0,
    )
    return GatewayService(settings, redis, None, keys[2], clock=clock)


async def register(redis: Redis, keys: list[LocalAccount], input_price: int, output: int) -> None:
    await ServiceRegistry(redis).put(
        Service(
            name=NAME,
            url="http://127.0.0.1:1/v1",
            input_price=input_price,
            output_price=output,
            signer_address=keys[2].address,
            provider=keys[1].address,
            updated_at=0,
        )
    )


async def prices(
    gw: GatewayService, clock: Clock, after_s: float = SERVICE_CACHE_S
) -> tuple[int, int]:
    """The prices charged `after_s` from now (by default once the cached terms are stale)."""
    clock.now += after_s
    service, _ = await gw.service(NAME)
    return service.input_price, service.output_price


async def test_a_rise_waits_for_the_period_a_drop_does_not(
    redis: Redis, keys: list[LocalAccount], redis_url: str
) -> None:
    clock = Clock()
    first = gateway(redis, keys, redis_url, clock)
    await register(redis, keys, 10, 20)
    assert await prices(first, clock) == (10, 20)

    await register(redis, keys, 30, 60)
    assert await prices(first, clock) == (10, 20)  # read now: the old prices for GRACE_S
    restarted = gateway(redis, keys, redis_url, clock)  # never read the old prices itself
    assert await prices(restarted, clock, 0) == (10, 20)
    assert await prices(first, clock, GRACE_S - 2 * SERVICE_CACHE_S) == (10, 20)

    await register(redis, keys, 5, 40)  # input below both, output still above the first
    assert await prices(first, clock) == (5, 20)  # the drop at once
    assert await prices(first, clock) == (5, 40)  # the first prices' period is over
    assert await prices(restarted, clock, 0) == (5, 40)
    assert await prices(first, clock, GRACE_S) == (5, 40)


async def test_no_period_applies_a_rise_at_once(
    redis: Redis, keys: list[LocalAccount], redis_url: str
) -> None:
    clock = Clock()
    gw = gateway(redis, keys, redis_url, clock, grace_s=0.0)
    await register(redis, keys, 10, 20)
    assert await prices(gw, clock) == (10, 20)
    await register(redis, keys, 30, 60)
    assert await prices(gw, clock) == (30, 60)
