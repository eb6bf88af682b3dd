# SPDX-License-Identifier: Apache-2.0
"""Settlements in flight, kept in Redis: what each one took from the book and where it stands.

A record lives from the seal until every chunk is confirmed on chain (or the attempt is given
up and its requests are released to the next one). Open records are indexed in a set, which
the settler scans for proofs or confirmations that are late.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from zg_shared.chain.types import Address
from zg_shared.events import ChunkProof

RECORD_PREFIX = "zg:billing:settlement"
OPEN_KEY = "zg:billing:open"
EARLY_KEY = "zg:billing:early"
# Closed records stay readable this long (for operators and the marketplace page).
CLOSED_TTL_S = 7 * 24 * 3600


class Status(StrEnum):
    PROVING = "proving"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class PartRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    nonce: int
    fee: int
    request_id: str


class UserPart(BaseModel):
    """One user's requests in a settlement, in nonce order."""

    model_config = ConfigDict(frozen=True)

    user: Address
    requests: tuple[PartRequest, ...]

    @property
    def fee(self) -> int:
        return sum(r.fee for r in self.requests)


class ChunkRange(BaseModel):
    """One chunk of one user's requests: what a proof of it must say."""

    model_config = ConfigDict(frozen=True)

    user: Address
    init_nonce: int
    final_nonce: int
    total_fee: int
    request_count: int


class ChunkState(ChunkRange):
    confirmed: bool = False


class ProvedPart(BaseModel):
    """The proofs of one part of a settlement (one chunk), as a prover published them."""

    model_config = ConfigDict(frozen=True)

    part: int
    proofs: tuple[ChunkProof, ...]


class SettlementRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    provider: Address
    status: Status = Status.PROVING
    reasons: tuple[str, ...] = ()
    created_ms: int
    oldest_served_ms: int
    parts: tuple[UserPart, ...]
    chunks: tuple[ChunkState, ...] = ()
    tx_hash: str = ""
    gas_used: int = 0
    submitted_ms: int = 0
    failure: str = ""
    # Proven in parallel: one proof request per chunk, collected here until all are in.
    proof_parts: int = 1
    proved: tuple[ProvedPart, ...] = ()
    # The chunk asked for in each part: a proof is taken only for its part's chunk.
    planned: tuple[ChunkRange, ...] = ()

    @property
    def request_count(self) -> int:
        return sum(len(p.requests) for p in self.parts)

    @property
    def users(self) -> list[Address]:
        return [p.user for p in self.parts]

    @property
    def settled_requests(self) -> int:
        return sum(c.request_count for c in self.chunks)

    def with_chunk_confirmed(self, user: str, final_nonce: int) -> SettlementRecord | None:
        """This record with the chunk marked confirmed, or None if it holds no such chunk."""
        chunks = list(self.chunks)
        for i, chunk in enumerate(chunks):
            if chunk.user.lower() == user.lower() and chunk.final_nonce == final_nonce:
                chunks[i] = chunk.model_copy(update={"confirmed": True})
                return self.model_copy(update={"chunks": tuple(chunks)})
        return None

    def planned_for(self, user: str) -> list[ChunkRange]:
        """The user's chunks asked to be proven."""
        return [c for c in self.planned if c.user.lower() == user.lower()]

    def plans(self, user: str, final_nonce: int) -> bool:
        """Whether one of the chunks asked to be proven is the user's up to `final_nonce`."""
        return any(c.final_nonce == final_nonce for c in self.planned_for(user))

    def with_part(self, part: int, proofs: tuple[ChunkProof, ...]) -> SettlementRecord | None:
        """This record with one more part's proofs, or None if that part is already in."""
        if any(p.part == part for p in self.proved):
            return None
        proved = (*self.proved, ProvedPart(part=part, proofs=proofs))
        return self.model_copy(update={"proved": tuple(sorted(proved, key=lambda p: p.part))})

    @property
    def all_proved(self) -> bool:
        return len(self.proved) >= self.proof_parts

    @property
    def proofs(self) -> list[ChunkProof]:
        """Every part's proofs in settlement order (users, then nonces)."""
        return [proof for part in self.proved for proof in part.proofs]

    @property
    def all_confirmed(self) -> bool:
        return bool(self.chunks) and all(c.confirmed for c in self.chunks)


class SettlementStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(settlement_id: str) -> str:
        return f"{RECORD_PREFIX}:{settlement_id}"

    async def save(self, record: SettlementRecord) -> None:
        closed = record.status in {Status.CONFIRMED, Status.FAILED}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(
                self.key(record.id), record.model_dump_json(), ex=CLOSED_TTL_S if closed else None
            )
            if closed:
                pipe.srem(OPEN_KEY, record.id)
            else:
                pipe.sadd(OPEN_KEY, record.id)
            await pipe.execute()

    async def get(self, settlement_id: str) -> SettlementRecord | None:
        raw = await self.redis.get(self.key(settlement_id))
        return SettlementRecord.model_validate_json(raw) if raw else None

    async def note_early_confirmation(self, user: str, final_nonce: int) -> None:
        """A FeesSettled that arrived before its settlement's receipt was recorded."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(EARLY_KEY, f"{user.lower()}:{final_nonce}")
            pipe.expire(EARLY_KEY, CLOSED_TTL_S)
            await pipe.execute()

    async def was_confirmed_early(self, user: str, final_nonce: int) -> bool:
        return bool(await self.redis.srem(EARLY_KEY, f"{user.lower()}:{final_nonce}"))

    async def open_records(self) -> list[SettlementRecord]:
        ids = sorted(
            v.decode() if isinstance(v, bytes) else v for v in await self.redis.smembers(OPEN_KEY)
        )
        records = []
        for settlement_id in ids:
            record = await self.get(settlement_id)
            if record is None:  # its key expired or was lost: nothing to track
                await self.redis.srem(OPEN_KEY, settlement_id)
            else:
                records.append(record)
        return records


class AttemptTracker:
    """Failed settlement attempts per account in a row; after `max_attempts` the account
    waits `backoff_s` before the next try, so one broken account cannot spin the settler."""

    KEY = "zg:billing:attempts"

    def __init__(self, redis: Redis, max_attempts: int, backoff_s: float) -> None:
        self.redis = redis
        self.max_attempts = max_attempts
        self.backoff_ms = int(backoff_s * 1000)

    async def failed(self, tag: str, now_ms: int) -> int:
        count = int(await self.redis.hincrby(self.KEY, tag, 1))
        if count >= self.max_attempts:
            await self.redis.hset(self.KEY + ":until", tag, now_ms + self.backoff_ms)
            await self.redis.hset(self.KEY, tag, 0)
        return count

    async def reset(self, tag: str) -> None:
        await self.redis.hdel(self.KEY, tag)
        await self.redis.hdel(self.KEY + ":until", tag)

    async def waiting(self, now_ms: int) -> set[str]:
        """Accounts backing off now."""
        until = await self.redis.hgetall(self.KEY + ":until")
        return {
            (k.decode() if isinstance(k, bytes) else k) for k, v in until.items() if int(v) > now_ms
        }
