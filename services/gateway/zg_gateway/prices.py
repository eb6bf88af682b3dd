# SPDX-License-Identifier: Apache-2.0
"""The prices the gateway charges: a rise on chain takes effect only `price_rise_grace_s`
after the gateway first sees it, a drop at once.

A user's SDK signs each request under the terms it last read from the chain (read again every
few seconds) and refuses any receipt above them. A gateway that charged a raised price as soon
as it read it would have the receipts of honest users who had not read it yet refused, and
their SDKs stop. So for each price the gateway charges the lowest that was in force on chain
at any time within the grace period: every price a signer may still hold is at least that.
Input fees are signed by the user, whatever the gateway holds; the gateway only refuses a fee
below what it charges. After the period the new price applies, and a request signed under
the old one is refused (`input_fee_too_low`, `output_price_too_low`), never charged above it.

The prices a service had until a change are remembered in Redis, shared by every gateway
process of the provider (workers, replicas, and one restarted within the period), as one hash
per service: "input:output" -> when it was replaced (ms). Whoever can write Redis can only
make the gateway charge less (the lowest of these and the chain's current prices).
"""

from __future__ import annotations

from redis.asyncio import Redis

from zg_shared.chain import Service

PRICES_PREFIX = "zg:gateway:prices"


def prices_key(provider: str, service: str) -> str:
    return f"{PRICES_PREFIX}:{provider.lower()}:{service}"


def _pair(service: Service) -> str:
    return f"{service.input_price}:{service.output_price}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class PriceWindow:
    def __init__(self, redis: Redis, provider: str, grace_s: float) -> None:
        self._redis = redis
        self._provider = provider
        self._grace_ms = int(grace_s * 1000)

    async def effective(self, chain: Service, before: Service | None, now: float) -> Service:
        """`chain`'s terms with each price lowered to the lowest in force within the grace
        period; `before`: the chain's terms as this process last read them (None: not yet)."""
        if self._grace_ms <= 0:
            return chain
        key = prices_key(self._provider, chain.name)
        now_ms = int(now * 1000)
        if before is not None and _pair(before) != _pair(chain):
            # Replaced now, as far as this process knows: a later sighting by another process
            # only moves the end of the period later, which charges less.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, _pair(before), now_ms)
                pipe.pexpire(key, 2 * self._grace_ms)
                await pipe.execute()
        replaced = await self._redis.hgetall(key)
        input_price, output_price = chain.input_price, chain.output_price
        for pair, at in replaced.items():
            try:
                old_input, old_output = (int(p) for p in _text(pair).split(":"))
                live = int(at) + self._grace_ms > now_ms
            except ValueError:
                continue  # not ours: nothing to lower
            if live:
                input_price = min(input_price, old_input)
                output_price = min(output_price, old_output)
        if (input_price, output_price) == (chain.input_price, chain.output_price):
            return chain
        return chain.model_copy(update={"input_price": input_price, "output_price": output_price})
