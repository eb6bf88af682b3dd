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

A change of the service's counting rule changes what is charged too, so it is terms as well:
the rule replaced is remembered in the same hash ("rule:NAME" -> when), and for the period a
request that says it was signed under it (ZG-Counting-Rule) is counted under it, input and
output; after it, such a request is refused (`counting_rule_changed`) and signed again.
"""

from __future__ import annotations

from redis.asyncio import Redis

from zg_shared.accounts import redis_text
from zg_shared.chain import Service

PRICES_PREFIX = "zg:gateway:prices"
RULE_PREFIX = "rule:"


def prices_key(provider: str, service: str) -> str:
    return f"{PRICES_PREFIX}:{provider.lower()}:{service}"


def _pair(service: Service) -> str:
    return f"{service.input_price}:{service.output_price}"


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
        replaced_now: dict[str, int] = {}
        if before is not None and _pair(before) != _pair(chain):
            replaced_now[_pair(before)] = now_ms
        if before is not None and before.counting_rule != chain.counting_rule:
            replaced_now[RULE_PREFIX + before.counting_rule] = now_ms
        if replaced_now:
            # Replaced now, as far as this process knows: a later sighting by another process
            # only moves the end of the period later, which charges less.
            async with self._redis.pipeline(transaction=True) as pipe:
                for field, when in replaced_now.items():
                    pipe.hset(key, field, when)
                pipe.pexpire(key, 2 * self._grace_ms)
                await pipe.execute()
        replaced = await self._redis.hgetall(key)
        input_price, output_price = chain.input_price, chain.output_price
        for pair, at in replaced.items():
            try:
                old_input, old_output = (int(p) for p in redis_text(pair).split(":"))
                live = int(at) + self._grace_ms > now_ms
            except ValueError:
                continue  # not ours: nothing to lower
            if live:
                input_price = min(input_price, old_input)
                output_price = min(output_price, old_output)
        if (input_price, output_price) == (chain.input_price, chain.output_price):
            return chain
        return chain.model_copy(update={"input_price": input_price, "output_price": output_price})

    async def previous_rules(self, chain: Service, now: float) -> dict[str, float]:
        """The counting rules the service had within the grace period, other than its
        current one: name -> when the period for it ends (s)."""
        if self._grace_ms <= 0:
            return {}
        rules = {}
        for field, at in (
            await self._redis.hgetall(prices_key(self._provider, chain.name))
        ).items():
            name = redis_text(field)
            if not name.startswith(RULE_PREFIX) or name == RULE_PREFIX + chain.counting_rule:
                continue
            try:
                until = (int(at) + self._grace_ms) / 1000
            except ValueError:
                continue
            if until > now:
                rules[name.removeprefix(RULE_PREFIX)] = until
        return rules
