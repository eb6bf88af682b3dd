# SPDX-License-Identifier: Apache-2.0
"""The gateway's side of each account, as atomic Redis scripts.

`admit` runs every balance and nonce check and takes the reservation in one step, so two
concurrent requests can never both spend the same balance or use the same nonce. `finish`
books the request's fate when its response ends: charged (its output fee becomes debt that
the next request pays) or voided (the backend never answered: nothing is charged, the nonce
stays burned). What a request reserved is stored with it, so `finish` needs only the nonce,
and a sweeper can void requests whose gateway died mid-flight (`stale`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from zg_gateway.scripts import Arg, ScriptRunner
from zg_shared.accounts import (
    PREFIX,
    account_key,
    inflight_key,
    inflight_meta_key,
    nonces_key,
    redis_text,
)
from zg_shared.lua import DECIMAL_LIB

OUTBOX_KEY = "zg:outbox"
log = logging.getLogger(__name__)

_ADMIT = (
    DECIMAL_LIB
    + """
-- KEYS: account, nonces, inflight, inflightmeta
-- ARGV: nonce, fee, previous_output_fee, reservation, debt_bound, now_ms[, origin: the
--       admitting gateway process, the request id and the service, space-separated[, the
--       pending refunds that count as available[, the key the signature verified against,
--       'x:y' in decimal[, '1' for a fee-only request]]]]
local acct = KEYS[1]
local h = redis.call('HMGET', acct, 'chain_block', 'balance', 'pending_refund', 'settled_nonce',
  'sealed_nonce', 'unsettled', 'reserved', 'output_debt', 'signer_x', 'signer_y',
  'admitted_key', 'key_floor')
if not h[1] then return {'no_account'} end
local balance, pending, settled, sealed = h[2], h[3], h[4], h[5]
local unsettled, reserved, debt = h[6] or '0', h[7] or '0', h[8] or '0'
local nonce, fee, prev, reservation, bound = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local floor = dmax(settled, sealed)
-- After a rotation the new key's nonces go above every nonce admitted before it: billing
-- settles in nonce order, one key per chunk, and the contract takes the replaced key only for
-- the lock time, so new-key requests placed (or held in flight) below the old key's would
-- keep those from settling until the contract refused them. A key other than the last one
-- admitted must be the account's key as the indexer has it now: a request checked against the
-- old key just before the indexer applied a rotation cannot land above the new key's floor.
local key, key_floor = ARGV[9] or '', h[12] or '0'
local new_key = false
if key ~= '' then
  if h[11] and h[11] ~= key then
    if key ~= (h[9] or '') .. ':' .. (h[10] or '') then return {'invalid_signature'} end
    local top = redis.call('ZRANGE', KEYS[2], -1, -1)[1]
    key_floor = dmax(floor, top and norm(top) or '0')
  end
  new_key = h[11] ~= key
  floor = dmax(floor, key_floor)
end
if dcmp(nonce, floor) <= 0 then return {'nonce_too_low', floor} end
local member = nonce_member(nonce)
if redis.call('ZSCORE', KEYS[2], member) then return {'nonce_reused'} end

if dcmp(prev, debt) > 0 then return {'overpaid', debt} end
-- A fee-only request pays debt owed, or it has no reason to be: each request booked costs the
-- provider a proof slot and gas to settle.
if ARGV[10] == '1' then
  if dcmp(debt, '0') <= 0 then return {'nothing_owed'} end
  if dcmp(prev, '0') <= 0 then return {'nothing_paid'} end
end
local debt_after = dsub(debt, prev)
if dcmp(debt_after, bound) > 0 then return {'debt_too_high', debt_after} end

-- What the provider may collect once this request is served: everything signed and unsettled
-- (this fee included), the debt left, and every reservation in flight (this one included).
local exposure = dadd(dadd(dadd(unsettled, debt_after), dadd(reserved, reservation)), fee)
local available = '0'
if dcmp(balance, pending) > 0 then available = dsub(balance, pending) end
-- Refunds the provider can still draw on (they unlock long after the next settlement).
if ARGV[8] and ARGV[8] ~= '0' then available = dadd(available, ARGV[8]) end
if dcmp(exposure, available) > 0 then return {'insufficient_balance', available, exposure} end

redis.call('ZADD', KEYS[2], 0, member)
redis.call('ZADD', KEYS[3], 0, member)
-- What the sweeper needs to book and publish the request's fate if its gateway dies.
local meta = fee .. ' ' .. prev .. ' ' .. reservation .. ' ' .. ARGV[6]
if ARGV[7] and ARGV[7] ~= '' then meta = meta .. ' ' .. ARGV[7] end
redis.call('HSET', KEYS[4], member, meta)
redis.call('HSET', acct, 'unsettled', dadd(unsettled, fee), 'output_debt', debt_after,
  'reserved', dadd(reserved, reservation))
if new_key then redis.call('HSET', acct, 'admitted_key', key, 'key_floor', key_floor) end
return {'ok', dsub(available, exposure)}
"""
)

_FINISH = (
    DECIMAL_LIB
    + """
-- KEYS: account, inflight, inflightmeta, outbox[, receipt]
-- ARGV: nonce, charged (1|0), output_fee, outbox entry ('' for none), receipt ('' for none),
--       receipt ttl in seconds
-- The receipt is stored even for a request already booked: the user holds its signature.
if ARGV[5] ~= '' then redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[6]) end
local member = nonce_member(ARGV[1])
local meta = redis.call('HGET', KEYS[3], member)
if not meta then return 'already_finished' end
local fee, prev, reservation = string.match(meta, '^(%d+) (%d+) (%d+)')
redis.call('HDEL', KEYS[3], member)
redis.call('ZREM', KEYS[2], member)
local h = redis.call('HMGET', KEYS[1], 'unsettled', 'reserved', 'output_debt')
local unsettled, reserved, debt = h[1] or '0', h[2] or '0', h[3] or '0'
reserved = dsub(reserved, reservation)
if ARGV[2] == '1' then
  debt = dadd(debt, ARGV[3])
else
  -- Voided: the signed fee is not collected, and the earlier output fees it paid are owed again.
  unsettled = dsub(unsettled, fee)
  debt = dadd(debt, prev)
end
redis.call('HSET', KEYS[1], 'unsettled', unsettled, 'reserved', reserved, 'output_debt', debt)
if ARGV[4] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[4]) end
return 'finished'
"""
)


class Refusal(StrEnum):
    NO_ACCOUNT = "no_account"
    NONCE_TOO_LOW = "nonce_too_low"
    NONCE_REUSED = "nonce_reused"
    OVERPAID = "overpaid"
    DEBT_TOO_HIGH = "debt_too_high"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    INVALID_SIGNATURE = "invalid_signature"  # the account's key changed since it was checked
    NOTHING_OWED = "nothing_owed"  # a fee-only request with no debt to pay
    NOTHING_PAID = "nothing_paid"  # a fee-only request paying none of the debt


class Admission(BaseModel):
    model_config = ConfigDict(frozen=True)

    admitted: bool
    refusal: Refusal | None = None
    detail: tuple[int, ...] = ()
    remaining: int = 0


class PaidRequest(BaseModel):
    """What the user's signature authorises (docs/protocol.md, section 5)."""

    model_config = ConfigDict(frozen=True)

    user: str
    provider: str
    nonce: int
    fee: int
    input_fee: int
    previous_output_fee: int


class InFlight(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: str
    provider: str
    nonce: int
    admitted_ms: int
    fee: int = 0
    previous_output_fee: int = 0
    owner: str = ""  # the gateway process that admitted it ("": admitted before owners were kept)
    request_id: str = ""
    service: str = ""


def origin(owner: str, request_id: str, service: str) -> str:
    """Who admitted a request, stored with it: `owner` and `request_id` hold no spaces; the
    service name goes last, since it may."""
    return f"{owner} {request_id} {service}"


class Ledger:
    """`runner`, when given, sends the scripts of concurrent requests in shared pipelines
    (`ScriptRunner`); without it each call is its own round trip.

    `wait_replicas` > 0: `finish` returns only once that many replicas hold what it wrote, or
    `wait_timeout_ms` passed (Redis WAIT, on the script's own connection: WAIT covers what
    that connection wrote). Redis replicates asynchronously, so without it a failover can
    lose a finished request the user already has a receipt for (docs/operations.md)."""

    def __init__(
        self,
        redis: Redis,
        runner: ScriptRunner | None = None,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 100,
    ) -> None:
        self._redis = redis
        self._runner = runner
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._admit = redis.register_script(_ADMIT)
        self._finish = redis.register_script(_FINISH)

    async def _run(self, script: AsyncScript, keys: list[str], args: Sequence[Arg]) -> Any:
        if self._runner is not None:
            return await self._runner(script, keys, args)
        return await script(keys=keys, args=list(args))

    async def admit(
        self,
        request: PaidRequest,
        reservation: int,
        debt_bound: int,
        now_ms: int,
        origin: str = "",
        drawable_refunds: int = 0,
        signer: tuple[int, int] | None = None,
        fee_only: bool = False,
    ) -> Admission:
        """Checks nonce, debt and balance and reserves, atomically; changes nothing if refused.
        `drawable_refunds` of the pending refunds count as available (see
        `GatewayService.drawable_refunds`). `signer`, the key the signature verified against,
        must still be the account's, and a key's first request sets its nonce floor above
        every nonce admitted under the key before it. `fee_only`: the request must pay some
        of a debt owed."""
        user, provider = request.user, request.provider
        keys = [
            account_key(user, provider),
            nonces_key(user, provider),
            inflight_key(user, provider),
            inflight_meta_key(user, provider),
        ]
        args: list[Arg] = [
            request.nonce,
            request.fee,
            request.previous_output_fee,
            reservation,
            debt_bound,
            now_ms,
            origin,
            drawable_refunds,
            f"{signer[0]}:{signer[1]}" if signer is not None else "",
            "1" if fee_only else "",
        ]
        reply = [redis_text(v) for v in await self._run(self._admit, keys, args)]
        if reply[0] == "ok":
            return Admission(admitted=True, remaining=int(reply[1]))
        return Admission(
            admitted=False, refusal=Refusal(reply[0]), detail=tuple(int(v) for v in reply[1:])
        )

    async def finish(
        self,
        user: str,
        provider: str,
        nonce: int,
        *,
        charged: bool,
        output_fee: int = 0,
        outbox_entry: str = "",
        receipt: tuple[str, str, int] | None = None,
    ) -> bool:
        """Releases the reservation and books the outcome, queueing `outbox_entry` (the
        served-request event) in the same atomic step; False if it was already booked (a
        retried or swept finish is harmless, and queues nothing). `receipt` is (key, value,
        ttl in seconds) to store in the same round trip, booked or not."""
        keys = [
            account_key(user, provider),
            inflight_key(user, provider),
            inflight_meta_key(user, provider),
            OUTBOX_KEY,
        ]
        args: list[str | int] = [nonce, 1 if charged else 0, output_fee if charged else 0]
        args.append(outbox_entry)
        if receipt is not None:
            keys.append(receipt[0])
            args += [receipt[1], receipt[2]]
        else:
            args += ["", 0]
        if self._wait_replicas:
            return redis_text(await self._finish_replicated(keys, args)) == "finished"
        return redis_text(await self._run(self._finish, keys, args)) == "finished"

    async def _finish_replicated(self, keys: list[str], args: Sequence[Arg]) -> Any:
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._finish(keys=keys, args=list(args), client=pipe)  # queued; loaded if new
            pipe.execute_command("WAIT", self._wait_replicas, self._wait_timeout_ms)
            result, replicas = await pipe.execute()
        if int(replicas) < self._wait_replicas:
            log.warning(
                "a finished request reached %d of %d replicas in %d ms: a failover now could "
                "lose it",
                replicas,
                self._wait_replicas,
                self._wait_timeout_ms,
            )
        return result

    async def in_flight(self) -> AsyncIterator[InFlight]:
        """Every request admitted and not yet finished, by any gateway."""
        async for key in self._redis.scan_iter(match=f"{PREFIX}:*:inflightmeta", count=500):
            tag = redis_text(key)[len(PREFIX) + 2 : -len("}:inflightmeta")]
            provider, user = tag.split(":")
            entries = await self._redis.hgetall(key)
            for member, meta in entries.items():
                fields = redis_text(meta).split(" ", 6)
                owner, request_id, service = [*fields[4:], "", "", ""][:3]
                yield InFlight(
                    user=user,
                    provider=provider,
                    nonce=int(redis_text(member)),
                    admitted_ms=int(fields[3]),
                    fee=int(fields[0]),
                    previous_output_fee=int(fields[1]),
                    owner=owner,
                    request_id=request_id,
                    service=service,
                )

    async def stale(self, older_than_ms: int) -> AsyncIterator[InFlight]:
        """Requests admitted before `older_than_ms` and never finished: their gateway died."""
        async for entry in self.in_flight():
            if entry.admitted_ms < older_than_ms:
                yield entry
