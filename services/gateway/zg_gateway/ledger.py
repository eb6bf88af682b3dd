"""The gateway's side of each account, as two atomic Redis scripts.

`admit` runs every balance and nonce check and takes the reservation in one step, so two
concurrent requests can never both spend the same balance or use the same nonce. `finish`
settles the request's fate when its response ends: charged (its output fee becomes debt the
next request pays) or voided (the backend never answered: nothing is charged, the nonce
stays burned).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from zg_shared.accounts import account_key, inflight_key, nonces_key
from zg_shared.lua import DECIMAL_LIB

_ADMIT = (
    DECIMAL_LIB
    + """
-- KEYS: account, nonces, inflight
-- ARGV: nonce, fee, previous_output_fee, reservation, debt_bound
local acct = KEYS[1]
local h = redis.call('HMGET', acct, 'chain_block', 'balance', 'pending_refund', 'settled_nonce',
  'sealed_nonce', 'unsettled', 'reserved', 'output_debt')
if not h[1] then return {'no_account'} end
local balance, pending, settled, sealed = h[2], h[3], h[4], h[5]
local unsettled, reserved, debt = h[6] or '0', h[7] or '0', h[8] or '0'
local nonce, fee, prev, reservation, bound = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local floor = dmax(settled, sealed)
if dcmp(nonce, floor) <= 0 then return {'nonce_too_low', floor} end
local member = nonce_member(nonce)
if redis.call('ZSCORE', KEYS[2], member) then return {'nonce_reused'} end

if dcmp(prev, debt) > 0 then return {'overpaid', debt} end
local debt_after = dsub(debt, prev)
if dcmp(debt_after, bound) > 0 then return {'debt_too_high', debt_after} end

-- What the provider may collect once this request is served: everything signed and unsettled
-- (this fee included), the debt left, and every reservation in flight (this one included).
local exposure = dadd(dadd(dadd(unsettled, debt_after), dadd(reserved, reservation)), fee)
local available = '0'
if dcmp(balance, pending) > 0 then available = dsub(balance, pending) end
if dcmp(exposure, available) > 0 then return {'insufficient_balance', available, exposure} end

redis.call('ZADD', KEYS[2], 0, member)
redis.call('ZADD', KEYS[3], 0, member)
redis.call('HSET', acct, 'unsettled', dadd(unsettled, fee), 'output_debt', debt_after,
  'reserved', dadd(reserved, reservation))
return {'ok', dsub(available, exposure)}
"""
)

_FINISH = (
    DECIMAL_LIB
    + """
-- KEYS: account, inflight
-- ARGV: nonce, reservation, charged (1|0), output_fee, fee, previous_output_fee
local acct = KEYS[1]
if redis.call('ZREM', KEYS[2], nonce_member(ARGV[1])) == 0 then return 'already_finished' end
local h = redis.call('HMGET', acct, 'unsettled', 'reserved', 'output_debt')
local unsettled, reserved, debt = h[1] or '0', h[2] or '0', h[3] or '0'
local reservation = ARGV[2]
if dcmp(reserved, reservation) < 0 then reservation = reserved end
reserved = dsub(reserved, reservation)
if ARGV[3] == '1' then
  debt = dadd(debt, ARGV[4])
else
  -- Voided: the signed fee is not collected, and the earlier output fees it paid are owed again.
  local fee = ARGV[5]
  if dcmp(unsettled, fee) < 0 then fee = unsettled end
  unsettled = dsub(unsettled, fee)
  debt = dadd(debt, ARGV[6])
end
redis.call('HSET', acct, 'unsettled', unsettled, 'reserved', reserved, 'output_debt', debt)
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


class Admission(BaseModel):
    model_config = ConfigDict(frozen=True)

    admitted: bool
    refusal: Refusal | None = None
    detail: tuple[int, ...] = ()
    remaining: int = 0


class PaidRequest(BaseModel):
    """What the user's signature authorises (SPEC section 4)."""

    model_config = ConfigDict(frozen=True)

    user: str
    provider: str
    nonce: int
    fee: int
    input_fee: int
    previous_output_fee: int


class Ledger:
    def __init__(self, redis: Redis) -> None:
        self._admit = redis.register_script(_ADMIT)
        self._finish = redis.register_script(_FINISH)

    async def admit(self, request: PaidRequest, reservation: int, debt_bound: int) -> Admission:
        """Checks nonce, debt and balance and reserves, atomically; changes nothing if refused."""
        keys = [
            account_key(request.user, request.provider),
            nonces_key(request.user, request.provider),
            inflight_key(request.user, request.provider),
        ]
        args = [request.nonce, request.fee, request.previous_output_fee, reservation, debt_bound]
        reply = [_text(v) for v in await self._admit(keys=keys, args=args)]
        if reply[0] == "ok":
            return Admission(admitted=True, remaining=int(reply[1]))
        return Admission(
            admitted=False, refusal=Refusal(reply[0]), detail=tuple(int(v) for v in reply[1:])
        )

    async def finish(
        self, request: PaidRequest, reservation: int, *, charged: bool, output_fee: int
    ) -> bool:
        """Releases the reservation and books the outcome; False if it was already booked
        (a retried finish is harmless)."""
        keys = [
            account_key(request.user, request.provider),
            inflight_key(request.user, request.provider),
        ]
        args = [
            request.nonce,
            reservation,
            1 if charged else 0,
            output_fee if charged else 0,
            request.fee,
            request.previous_output_fee,
        ]
        return _text(await self._finish(keys=keys, args=args)) == "finished"


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
