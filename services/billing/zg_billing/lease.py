# SPDX-License-Identifier: Apache-2.0
"""Active and standby: one billing instance per provider settles, the others wait.

The leader holds a lease in Redis (`zg:billing:lease:<provider>`: its instance id and a
fencing token, with a TTL it renews every third of it). A standby polls until the lease is
free (the leader stopped and released it, or died and it lapsed), takes it with the next
token, and only then starts consuming and settling. A leader that finds the lease taken by
another, or cannot renew it before it lapses, was deposed: it exits at once without
finishing anything (`on_lost`), so it writes nothing more. Just before it sends a settlement
transaction the leader checks that its token is still the lease's (`check`); what is left
between that check and the transaction can cost a deposed leader at most the gas of a
transaction the contract's nonce rule reverts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from redis.asyncio import Redis

log = logging.getLogger(__name__)

# KEYS: lease, token counter. ARGV: instance id, ttl ms. Returns the token held, or 0.
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then
  local owner, token = string.match(held, '^(.-) (%d+)$')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"""
# KEYS: lease. ARGV: instance id, token. Deletes the lease only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Deposed(RuntimeError):
    """This instance no longer holds the lease: another billing settles now."""


def lease_key(provider: str) -> str:
    return f"zg:billing:lease:{provider.lower()}"


class Lease:
    def __init__(
        self,
        redis: Redis,
        provider: str,
        ttl_s: float,
        on_lost: Callable[[], None],
        instance: str | None = None,
    ) -> None:
        self.redis = redis
        self.key = lease_key(provider)
        self.ttl_ms = int(ttl_s * 1000)
        self.on_lost = on_lost
        self.instance = instance or secrets.token_hex(8)
        self.token = 0
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._renewing: asyncio.Task[None] | None = None

    async def try_acquire(self) -> int:
        """The token if this instance holds the lease now (taken or renewed), else 0."""
        token = int(
            await self._acquire(
                keys=[self.key, self.key + ":token"], args=[self.instance, self.ttl_ms]
            )
        )
        if token and self.token and token != self.token:
            # The lease lapsed (or Redis lost it) and nobody took it: ours again.
            log.warning("billing lease %s taken again (token %d)", self.key, token)
        if token:
            self.token = token
        return token

    async def acquire(self) -> int:
        """Waits (as the standby) until this instance holds the lease; then keeps renewing."""
        poll_s = self.ttl_ms / 3000
        announced = False
        while True:
            try:
                if await self.try_acquire():
                    break
            except Exception:  # Redis away for a moment: keep waiting
                log.exception("billing lease: cannot reach Redis")
            if not announced:
                log.info("standing by: another billing instance holds %s", self.key)
                announced = True
            await asyncio.sleep(poll_s)
        log.info("billing lease %s taken (token %d)", self.key, self.token)
        self._renewing = asyncio.create_task(self._renew(), name="lease")
        return self.token

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                token = await self.try_acquire()
            except Exception:  # the lease is ours until it lapses: try again until then
                if loop.time() - renewed < self.ttl_ms / 1000:
                    log.warning("billing lease: renewal failed; retrying", exc_info=True)
                    continue
                token = 0
            if not token:
                log.critical("billing lease %s lost: another instance settles now", self.key)
                self.on_lost()
                return
            renewed = loop.time()

    async def check(self) -> None:
        """Raises `Deposed` if another instance holds the lease (renewing it otherwise)."""
        if not await self.try_acquire():
            raise Deposed(f"billing lease {self.key} is another instance's")

    async def release(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        if self.token:
            with contextlib.suppress(Exception):
                await self._release(keys=[self.key], args=[self.instance, self.token])
