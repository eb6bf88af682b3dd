# SPDX-License-Identifier: Apache-2.0
"""Billing's book of each account's unsettled requests, as atomic Redis scripts.

Per account (keys share the account's hash tag, see `zg_shared.accounts`):

- `:bill` hash: nonce member -> the charged request as JSON (`BookEntry`), or `v` for a request
  the gateway voided, or one signed for no fee (its nonce is burned, nothing is owed);
- fields of the account hash: `bill_fee`, `bill_count` (what the book holds), `sealed_nonce`
  (nonces at or below it belong to a batch, the gateway refuses them), `settling` (the open
  settlement that holds the account), `due_reason` (settle at the next pass: the user asked
  for a refund, or an attempt failed and what is still valid is retried);

and one index over all accounts, `zg:billing:due`: account tag -> when its oldest unsettled
request was served (ms), which the settlement policy scans.

`record` is idempotent by nonce (a nonce is served once), so a redelivered event or a replay
of the whole stream changes nothing twice. When a nonce is missing from the gateway's own
view (Redis lost it), `record` books it there too: that is how a flushed Redis is rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import cast

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from zg_shared.accounts import account_key, inflight_key, nonces_key, redis_text
from zg_shared.chain.types import Address, checksum
from zg_shared.events import RequestServedV1
from zg_shared.lua import DECIMAL_LIB, nonce_member

DUE_KEY = "zg:billing:due"


def bill_key(user: str, provider: str) -> str:
    return account_key(user, provider) + ":bill"


def account_tag(user: str, provider: str) -> str:
    return f"{provider.lower()}:{user.lower()}"


def split_tag(tag: str) -> tuple[Address, Address]:
    """(user, provider) of an account tag."""
    provider, user = tag.split(":")
    return checksum(user), checksum(provider)


_LIB = (
    DECIMAL_LIB
    + """
local function dsub0(a, b)
  if dcmp(a, b) <= 0 then return '0' end
  return dsub(a, b)
end

-- Drops the book entries `drop(member)` selects, takes their fees off the gateway's `unsettled`
-- and the book's totals, and re-indexes the account's oldest unsettled request.
local function drop_where(acct, bill, due, tag, drop)
  local entries = redis.call('HGETALL', bill)
  local count, total, oldest = 0, '0', nil
  for i = 1, #entries, 2 do
    local m, e = entries[i], entries[i + 1]
    if drop(m) then
      redis.call('HDEL', bill, m)
      if e ~= 'v' then
        total = dadd(total, cjson.decode(e).fee)
        count = count + 1
      end
    elseif e ~= 'v' then
      local t = tonumber(cjson.decode(e).t)
      if not oldest or t < oldest then oldest = t end
    end
  end
  if count > 0 then
    local h = redis.call('HMGET', acct, 'unsettled', 'bill_fee', 'bill_count')
    redis.call('HSET', acct, 'unsettled', dsub0(h[1], total), 'bill_fee', dsub0(h[2], total),
      'bill_count', math.max(0, tonumber(h[3] or '0') - count))
  end
  if oldest then redis.call('ZADD', due, oldest, tag) else redis.call('ZREM', due, tag) end
  return {count, total}
end

-- Entries at or below `upto`: settled on chain.
local function settle_upto(acct, bill, due, tag, upto)
  return drop_where(acct, bill, due, tag, function(m) return dcmp(m, upto) <= 0 end)
end
"""
)

_RECORD = (
    _LIB
    + """
-- KEYS: account, nonces, bill, due
-- ARGV: nonce, charged (1|0), fee, entry, served_ms, tag, output_fee, previous_output_fee
local acct, nonces, bill, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local h = redis.call('HMGET', acct, 'chain_block', 'settled_nonce', 'sealed_nonce')
if not h[1] then return {'no_account', 0} end
if dcmp(ARGV[1], h[2]) <= 0 then return {'settled', 0} end
local member = nonce_member(ARGV[1])
if redis.call('HEXISTS', bill, member) == 1 then return {'duplicate', 0} end
local fresh = redis.call('ZADD', nonces, 'NX', 0, member)
if ARGV[2] == '1' and fresh == 1 then
  -- The gateway's view lacks this request (Redis lost it): book it there as admit did.
  local g = redis.call('HMGET', acct, 'unsettled', 'output_debt')
  redis.call('HSET', acct, 'unsettled', dadd(g[1], ARGV[3]),
    'output_debt', dsub0(dadd(g[2], ARGV[7]), ARGV[8]))
end
-- A request signed for no fee is booked like a voided one: there is nothing to collect, and
-- proving and settling it would only cost the provider (a slot, and gas, per request).
if ARGV[2] == '1' and dcmp(ARGV[3], '0') > 0 then
  redis.call('HSET', bill, member, ARGV[4])
  local g = redis.call('HMGET', acct, 'bill_fee', 'bill_count')
  redis.call('HSET', acct, 'bill_fee', dadd(g[1], ARGV[3]),
    'bill_count', tonumber(g[2] or '0') + 1)
  local current = redis.call('ZSCORE', due, ARGV[6])
  if not current or tonumber(current) > tonumber(ARGV[5]) then
    redis.call('ZADD', due, ARGV[5], ARGV[6])
  end
else
  redis.call('HSET', bill, member, 'v')
end
if h[3] and dcmp(ARGV[1], h[3]) <= 0 then return {'behind_seal', fresh} end
return {'recorded', fresh}
"""
)

_SEAL = (
    _LIB
    + """
-- KEYS: account, nonces, inflight, bill, due
-- ARGV: settlement_id, max_requests, tag
local acct, nonces, inflight, bill, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local h = redis.call('HMGET', acct, 'chain_block', 'settled_nonce', 'sealed_nonce', 'settling',
  'balance', 'signer_x', 'signer_y')
if not h[1] then return {'no_account'} end
if h[4] and h[4] ~= '' then return {'busy', h[4]} end
local settled, sealed = h[2] or '0', h[3] or '0'

-- What the chain has settled already (a confirmation this book missed) is done.
settle_upto(acct, bill, due, ARGV[3], settled)

-- Advance the seal over accepted nonces, lowest first, while each one's outcome is in the book
-- and none is still being served: no request the gateway accepted can fall behind the seal.
local seal = dmax(sealed, settled)
for _, m in ipairs(redis.call('ZRANGE', nonces, 0, -1)) do
  if dcmp(m, seal) > 0 then
    if redis.call('ZSCORE', inflight, m) then break end
    if redis.call('HEXISTS', bill, m) == 0 then break end
    seal = m
  end
end
if dcmp(seal, sealed) > 0 then redis.call('HSET', acct, 'sealed_nonce', norm(seal)) end
redis.call('ZREMRANGEBYLEX', nonces, '-', '[' .. nonce_member(seal))

-- The batch: sealed charged requests in nonce order, a prefix bounded in count and by the
-- balance (the contract refuses a chunk above it).
local sealed_entries = {}
local entries = redis.call('HGETALL', bill)
for i = 1, #entries, 2 do
  if dcmp(entries[i], seal) <= 0 then
    if entries[i + 1] == 'v' then
      redis.call('HDEL', bill, entries[i])
    else
      sealed_entries[#sealed_entries + 1] = {entries[i], entries[i + 1]}
    end
  end
end
table.sort(sealed_entries, function(a, b) return a[1] < b[1] end)
local out, spent, limit = {}, '0', tonumber(ARGV[2])
for _, e in ipairs(sealed_entries) do
  if #out >= limit then break end
  local fee = cjson.decode(e[2]).fee
  if dcmp(dadd(spent, fee), h[5]) > 0 then break end
  spent = dadd(spent, fee)
  out[#out + 1] = e[1] .. ' ' .. e[2]
end
if #out == 0 then return {'empty', tostring(#sealed_entries)} end
redis.call('HSET', acct, 'settling', ARGV[1])
redis.call('HDEL', acct, 'due_reason')
return {'ok', h[6], h[7], unpack(out)}
"""
)

_CONFIRM = (
    _LIB
    + """
-- KEYS: account, bill, due   ARGV: final_nonce, tag
local r = settle_upto(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1])
return {r[1], r[2]}
"""
)

_WRITE_OFF = (
    _LIB
    + """
-- KEYS: account, bill, due   ARGV: tag, members...
local gone = {}
for i = 2, #ARGV do gone[ARGV[i]] = true end
local r = drop_where(KEYS[1], KEYS[2], KEYS[3], ARGV[1], function(m) return gone[m] end)
return r[2]
"""
)

_RELEASE = """
-- KEYS: account   ARGV: settlement_id
if redis.call('HGET', KEYS[1], 'settling') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'settling')
  return 1
end
return 0
"""


class BookEntry(BaseModel):
    """A charged request as the book keeps it: enough to prove it and to report it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="The gateway's request id")
    fee: str = Field(description="Decimal wei: Lua reads it without losing precision")
    sig: str = Field(description="The user's EdDSA-Poseidon signature, 96 bytes hex")
    t: int = Field(description="When the gateway served it, ms since the epoch")
    tp: str = Field("", description="W3C traceparent of the request, continued by settlement")
    k: str = Field(
        "",
        description="The key the signature verified against, 'x:y' in decimal (text: Lua "
        "reads these entries); empty: the account's key",
    )

    def signer_or(self, account_signer: tuple[int, int]) -> tuple[int, int]:
        if not self.k:
            return account_signer
        x, y = self.k.split(":")
        return (int(x), int(y))


class Recorded(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    SETTLED = "settled"  # at or below the chain's nonce: paid already
    # Arrived after its nonce was sealed: only a later batch can take it.
    BEHIND_SEAL = "behind_seal"
    NO_ACCOUNT = "no_account"


class RecordResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: Recorded
    restored: bool = Field(False, description="The gateway's view lacked it and now has it")


class SealedRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    nonce: int
    entry: BookEntry

    @property
    def fee(self) -> int:
        return int(self.entry.fee)


class Sealed(BaseModel):
    """What `seal` took for a settlement, or why it took nothing."""

    model_config = ConfigDict(frozen=True)

    status: str  # ok | empty | busy | no_account
    signer: tuple[int, int] = (0, 0)
    requests: tuple[SealedRequest, ...] = ()
    waiting: int = Field(0, description="Sealed requests the balance or the limit left out")
    current: bool = Field(
        True, description="Signed by the account's key as Redis has it (else by a replaced one)"
    )


class AccountSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: Address
    provider: Address
    unsettled_fee: int
    unsettled_count: int
    oldest_ms: int
    due_reason: str
    settling: str


class Book:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._record = redis.register_script(_RECORD)
        self._seal = redis.register_script(_SEAL)
        self._confirm = redis.register_script(_CONFIRM)
        self._release = redis.register_script(_RELEASE)
        self._write_off = redis.register_script(_WRITE_OFF)

    async def record(
        self, event: RequestServedV1, served_ms: int, traceparent: str = ""
    ) -> RecordResult:
        user, provider = event.user, event.provider
        charged = event.outcome == "charged"
        entry = BookEntry(
            id=event.event_id,
            fee=str(event.fee),
            sig=event.signature,
            t=served_ms,
            tp=traceparent,
            k=f"{event.signer[0]}:{event.signer[1]}" if event.signer else "",
        )
        reply = await self._record(
            keys=[
                account_key(user, provider),
                nonces_key(user, provider),
                bill_key(user, provider),
                DUE_KEY,
            ],
            args=[
                event.nonce,
                1 if charged else 0,
                event.fee,
                entry.model_dump_json(),
                served_ms,
                account_tag(user, provider),
                event.output_fee if charged else 0,
                event.previous_output_fee if charged else 0,
            ],
        )
        return RecordResult(outcome=Recorded(redis_text(reply[0])), restored=int(reply[1]) == 1)

    async def seal(self, user: str, provider: str, settlement_id: str, max_requests: int) -> Sealed:
        """Advances the account's seal and takes its oldest sealed requests for a settlement
        (marking the account as held by it); nothing if another settlement holds it."""
        reply = [
            redis_text(v)
            for v in await self._seal(
                keys=[
                    account_key(user, provider),
                    nonces_key(user, provider),
                    inflight_key(user, provider),
                    bill_key(user, provider),
                    DUE_KEY,
                ],
                args=[settlement_id, max_requests, account_tag(user, provider)],
            )
        ]
        if reply[0] == "empty":
            return Sealed(status="empty", waiting=int(reply[1]))
        if reply[0] != "ok":
            return Sealed(status=reply[0])
        account_signer = (int(reply[1]), int(reply[2]))
        requests: list[SealedRequest] = []
        signer: tuple[int, int] | None = None
        for item in reply[3:]:
            member, raw = item.split(" ", 1)
            entry = BookEntry.model_validate_json(raw)
            # One settlement proves one key: after a rotation (rotateSigner) the requests the
            # previous key signed go first, on their own, while the contract still takes that
            # key; the rest stay in the book for the next seal.
            key = entry.signer_or(account_signer)
            if signer is not None and key != signer:
                break
            signer = key
            requests.append(SealedRequest(nonce=int(member), entry=entry))
        signer = signer or account_signer
        return Sealed(
            status="ok",
            signer=signer,
            requests=tuple(requests),
            current=signer == account_signer,
        )

    async def confirm(self, user: str, provider: str, final_nonce: int) -> tuple[int, int]:
        """Drops requests up to `final_nonce`, settled on chain: (count, fee) newly dropped."""
        count, fee = await self._confirm(
            keys=[account_key(user, provider), bill_key(user, provider), DUE_KEY],
            args=[final_nonce, account_tag(user, provider)],
        )
        return int(count), int(redis_text(fee))

    async def release(self, user: str, provider: str, settlement_id: str) -> bool:
        """Frees the account from `settlement_id`, so that the next seal may take it again."""
        return bool(await self._release(keys=[account_key(user, provider)], args=[settlement_id]))

    async def entries(
        self, user: str, provider: str, nonces: Sequence[int]
    ) -> list[tuple[int, BookEntry | None]]:
        """The book's entries for these nonces (None: not in the book, or voided)."""
        if not nonces:
            return []
        raw = await self.redis.hmget(bill_key(user, provider), [nonce_member(n) for n in nonces])
        return [
            (n, BookEntry.model_validate_json(v) if v is not None and v != b"v" else None)
            for n, v in zip(nonces, raw, strict=True)
        ]

    async def flag_due(self, user: str, provider: str, reason: str) -> None:
        """Makes the account due at the next policy pass, whatever its fee and age."""
        await self.redis.hset(account_key(user, provider), "due_reason", reason)

    async def write_off(self, user: str, provider: str, nonces: Sequence[int]) -> int:
        """Removes requests that can never be settled (the caller reports them); their fees
        leave `unsettled` too, so the user is not held to them. Returns the fee removed."""
        fee = await self._write_off(
            keys=[account_key(user, provider), bill_key(user, provider), DUE_KEY],
            args=[account_tag(user, provider), *(nonce_member(n) for n in nonces)],
        )
        return int(redis_text(fee))

    async def due_accounts(self, limit: int = 1000) -> list[AccountSummary]:
        """Accounts with unsettled requests, oldest first."""
        rows = cast(
            list[tuple[bytes, float]],
            await self.redis.zrange(DUE_KEY, 0, limit - 1, withscores=True),
        )
        if not rows:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag, _ in rows:
                user, provider = split_tag(redis_text(tag))
                pipe.hmget(
                    account_key(user, provider), "bill_fee", "bill_count", "due_reason", "settling"
                )
            fields: list[list[bytes | None]] = await pipe.execute()
        summaries = []
        for (tag, oldest), (fee, count, flag, settling) in zip(rows, fields, strict=True):
            user, provider = split_tag(redis_text(tag))
            summaries.append(
                AccountSummary(
                    user=user,
                    provider=provider,
                    unsettled_fee=int(redis_text(fee or b"0")),
                    unsettled_count=int(redis_text(count or b"0")),
                    oldest_ms=int(oldest),
                    due_reason=redis_text(flag or b""),
                    settling=redis_text(settling or b""),
                )
            )
        return summaries
