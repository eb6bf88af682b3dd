# SPDX-License-Identifier: Apache-2.0
"""Where the indexer is, kept in Redis beside the view it maintains.

- `cursor` (hash): the last log published, `(block, block_hash, log_index)`, or a whole block
  done (`log_index` absent). The next range starts after it.
- `blocks` (sorted set, scored by number): hashes of recently indexed blocks (every block with
  events, and each range's last block), to find the common ancestor after a reorg.
- `touched` (sorted set, scored by the newest block that touched it): accounts and services
  changed recently, to re-read when a reorg drops those blocks.
- `backfill` (string): the block the view was last rebuilt from the contract's views at. Its
  absence (with the cursor's) tells the indexer that Redis was flushed.
- `deployment` (string): the deployment the checkpoint was made on (`zg_shared.deployment`).
  A checkpoint of another deployment (a chain restarted from genesis) is not resumed: the
  indexer starts over.

The journal keeps `window` blocks; a reorg deeper than that is handled as a fresh backfill.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from zg_shared.accounts import redis_text
from zg_shared.chain.types import Hash32


class Cursor(BaseModel):
    model_config = ConfigDict(frozen=True)

    block: int
    block_hash: Hash32
    log_index: int | None = None

    @property
    def next_block(self) -> int:
        """The first block still to read: this one again if only part of it is published."""
        return self.block if self.log_index is not None else self.block + 1

    def is_after(self, block: int, log_index: int) -> bool:
        """Whether the log at (block, log_index) is already published."""
        if block != self.block:
            return block < self.block
        return self.log_index is None or log_index <= self.log_index

    def sort_key(self) -> tuple[int, float]:
        return (self.block, float("inf") if self.log_index is None else self.log_index)


class CheckpointStore:
    def __init__(self, redis: Redis, prefix: str = "zg:indexer", window: int = 256) -> None:
        self.redis = redis
        self.window = window
        self.cursor_key = f"{prefix}:cursor"
        self.blocks_key = f"{prefix}:blocks"
        self.touched_key = f"{prefix}:touched"
        self.backfill_key = f"{prefix}:backfill"
        self.deployment_key = f"{prefix}:deployment"

    async def load(self) -> Cursor | None:
        raw: dict[Any, Any] = await self.redis.hgetall(self.cursor_key)
        if not raw:
            return None
        fields = {redis_text(k): redis_text(v) for k, v in raw.items()}
        log_index = fields.get("log_index", "")
        return Cursor(
            block=int(fields["block"]),
            block_hash=fields["block_hash"],
            log_index=int(log_index) if log_index else None,
        )

    async def save(self, cursor: Cursor) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.cursor_key,
                mapping={
                    "block": cursor.block,
                    "block_hash": cursor.block_hash,
                    "log_index": "" if cursor.log_index is None else cursor.log_index,
                },
            )
            pipe.zadd(self.blocks_key, {f"{cursor.block}:{cursor.block_hash}": cursor.block})
            pipe.zremrangebyscore(self.blocks_key, "-inf", f"({cursor.block - self.window}")
            pipe.zremrangebyscore(self.touched_key, "-inf", f"({cursor.block - self.window}")
            await pipe.execute()

    async def record(self, block: int, block_hash: str, touched: set[str]) -> None:
        """Journals a block about to be projected (before its Redis writes)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.blocks_key, {f"{block}:{block_hash}": block})
            if touched:
                pipe.zadd(self.touched_key, dict.fromkeys(touched, block))
            await pipe.execute()

    async def recent_blocks(self, up_to: int) -> list[tuple[int, str]]:
        """Journaled (number, hash) at or below `up_to`, newest first."""
        members: list[Any] = await self.redis.zrevrangebyscore(self.blocks_key, up_to, "-inf")
        found: list[tuple[int, str]] = []
        for member in members:
            number, block_hash = redis_text(member).split(":", 1)
            found.append((int(number), block_hash))
        return found

    async def touched_after(self, block: int) -> list[str]:
        members: list[Any] = await self.redis.zrangebyscore(self.touched_key, f"({block}", "+inf")
        return [redis_text(m) for m in members]

    async def forget_after(self, block: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(self.blocks_key, f"({block}", "+inf")
            pipe.zremrangebyscore(self.touched_key, f"({block}", "+inf")
            await pipe.execute()

    async def backfilled_at(self) -> int | None:
        raw = await self.redis.get(self.backfill_key)
        return int(raw) if raw is not None else None

    async def mark_backfilled(self, block: int) -> None:
        await self.redis.set(self.backfill_key, block)

    async def deployment(self) -> str | None:
        raw = await self.redis.get(self.deployment_key)
        return redis_text(raw) if raw is not None else None

    async def claim(self, deployment: str) -> None:
        await self.redis.set(self.deployment_key, deployment)

    async def start_over(self, cursor: Cursor, backfilled_at: int, deployment: str) -> None:
        """Forgets the journal and resumes after `cursor`, the view rebuilt at `backfilled_at`."""
        await self.clear()
        await self.save(cursor)
        await self.mark_backfilled(backfilled_at)
        await self.claim(deployment)

    async def clear(self) -> None:
        await self.redis.delete(
            self.cursor_key,
            self.blocks_key,
            self.touched_key,
            self.backfill_key,
            self.deployment_key,
        )
