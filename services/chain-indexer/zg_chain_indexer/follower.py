# SPDX-License-Identifier: Apache-2.0
"""Follows the Serving contract's logs, `confirmations` blocks behind the head.

One `step` reads the next bounded block range after the cursor and, block by block:
projects it into Redis, publishes its events in log order (saving the cursor after each),
and finally saves the range's last block as done. So Redis is written before an event is
published, and the cursor advances only after; a restart resumes after the last published log
(see `checkpoint`), and an event is never published twice nor skipped.

Before each range it checks that the cursor's block is still canonical. If not, it walks the
journaled block hashes back to the newest one still canonical (the common ancestor), re-reads
every account and service the dropped blocks touched from the contract's views, drops their
settlements above the ancestor, publishes `ReorgDetectedV1`, and resumes from the ancestor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import ClientError
from redis.exceptions import RedisError
from web3.exceptions import BlockNotFound, Web3Exception

from zg_chain_indexer.checkpoint import CheckpointStore, Cursor
from zg_chain_indexer.fold import (
    AccountKey,
    AccountView,
    account_key_of,
    fold_block,
    parse_touched,
    touched_accounts,
)
from zg_chain_indexer.metrics import IndexerMetrics
from zg_chain_indexer.projection import Projection
from zg_chain_indexer.views import account_at, accounts_at, service_at, services_at
from zg_shared.chain.client import ServingClient
from zg_shared.chain.errors import ChainError, ContractRevert
from zg_shared.chain.events import AccountAdded, LogPosition, ServingEvent
from zg_shared.chain.types import hex32
from zg_shared.deployment import DeploymentIdentity, identify
from zg_shared.events.base import Event
from zg_shared.events.chain import ReorgDetectedV1

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[bool]]
"""Publishes one event and waits for JetStream's ack; True if JetStream called it a duplicate."""
Published = Callable[[int], Awaitable[list[LogPosition]]]
"""Positions of the newest chain events on the stream, newest first, at most that many."""
# How far back the stream is searched for a canonical event after a reorg deeper than the journal.
DEEP_REORG_SCAN = 1000


class ChainMoved(ChainError):
    """The chain changed while a range was being read: read it again."""


@dataclass(frozen=True)
class FollowerConfig:
    confirmations: int = 6
    max_block_range: int = 500
    poll_interval_s: float = 2.0
    backoff_max_s: float = 30.0


class Follower:
    def __init__(
        self,
        serving: ServingClient,
        checkpoint: CheckpointStore,
        projection: Projection,
        publish: Publish,
        published: Published,
        metrics: IndexerMetrics,
        config: FollowerConfig,
    ) -> None:
        self.serving = serving
        self.w3 = serving.w3
        self.checkpoint = checkpoint
        self.projection = projection
        self._publish = publish
        self._published = published
        self.metrics = metrics
        self.config = config
        self._lock_time: int | None = None
        self._resumed = False
        self._deployment: str | None = None
        self.published = 0
        self.duplicates = 0
        self.reorgs = 0
        self.last_error: str | None = None
        self._stop = asyncio.Event()

    # ------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        """Steps until `stop` is set. Any failure (RPC, NATS, Redis down) is logged and retried
        after an exponential back-off; nothing past the saved cursor is lost meanwhile."""
        self._stop = stop
        backoff = self.config.poll_interval_s
        while not stop.is_set():
            try:
                more = await self.step()
            except Exception as exc:  # the loop must outlive any outage
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.poll_error(_error_kind(exc))
                log.warning("indexing failed (%s); retrying in %.1fs", self.last_error, backoff)
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)
                continue
            self.last_error = None
            backoff = self.config.poll_interval_s
            if not more:
                await _sleep_unless(stop, self.config.poll_interval_s)

    async def step(self) -> bool:
        """Indexes one range; True if more confirmed blocks are waiting."""
        head = await self.w3.eth.block_number
        confirmed = head - self.config.confirmations
        if confirmed < 0:
            return False
        cursor = await self.checkpoint.load()
        floor = await self.checkpoint.backfilled_at()
        if cursor is not None and not self._resumed and not await self._is_ours(cursor):
            cursor = None
        if cursor is None or floor is None:
            cursor, floor = await self.backfill(confirmed)
        elif not self._resumed:
            cursor = await self._resume(cursor)
        self._resumed = True
        if await self._canonical_hash(cursor.block) != cursor.block_hash:
            await self._roll_back(cursor, head, confirmed)
            return True
        self.metrics.progress(head, cursor.block)
        start = cursor.next_block
        if start > confirmed:
            return False
        end = min(confirmed, start + self.config.max_block_range - 1)
        by_block = await self._read_range(start, end)
        end_hash = await self._canonical_hash(end)
        for number, events in sorted(by_block.items()):
            block_hash = _position(events[0]).block_hash
            if await self._canonical_hash(number) != block_hash:
                raise ChainMoved(f"block {number} changed while reading {start}..{end}")
        if end_hash is None:
            raise ChainMoved(f"block {end} vanished while reading {start}..{end}")
        for number, events in sorted(by_block.items()):
            if self._stop.is_set():
                return False  # shutting down: the cursor already covers what was published
            cursor = await self._index_block(number, events, cursor, floor)
        cursor = Cursor(block=end, block_hash=end_hash)
        await self.checkpoint.save(cursor)
        self.metrics.progress(head, end)
        return end < confirmed

    # ------------------------------------------------------------ one block

    async def _read_range(self, start: int, end: int) -> dict[int, list[ServingEvent]]:
        by_block: dict[int, list[ServingEvent]] = {}
        for event in await self.serving.get_events(start, end):
            by_block.setdefault(_position(event).block_number, []).append(event)
        return by_block

    async def _index_block(
        self, number: int, events: list[ServingEvent], cursor: Cursor, floor: int
    ) -> Cursor:
        block_hash = _position(events[0]).block_hash
        prior = await self._prior(events, touched_accounts(events))
        changes = fold_block(events, prior, await self._get_lock_time())
        # Journal first: a rollback must know what this block touched even if we die mid-way.
        await self.checkpoint.record(number, block_hash, changes.touched)
        await self.projection.write_block(number, changes, floor=floor)
        for position, event in changes.events:
            if cursor.is_after(position.block_number, position.log_index):
                continue  # published before a restart
            duplicate = await self._publish(event)
            self._count(event, duplicate)
            cursor = Cursor(block=number, block_hash=block_hash, log_index=position.log_index)
            await self.checkpoint.save(cursor)
        return cursor

    async def _prior(
        self, events: list[ServingEvent], keys: set[AccountKey]
    ) -> dict[AccountKey, AccountView]:
        prior = await self.projection.prior(keys)
        added = {account_key_of(e.user, e.provider) for e in events if isinstance(e, AccountAdded)}
        for key in keys - prior.keys() - added:
            # Known neither to Redis nor from this block's AccountAdded (a partial loss): the
            # latest view gives the immutable signer (and a settled nonce at least as new). Not
            # the view at this block: a pruned node may no longer serve an old block's state.
            try:
                account = await self.serving.get_account(key[0], key[1])
            except ContractRevert as exc:
                if exc.name != "ServingAccountNotFound":
                    raise
                continue
            prior[key] = AccountView(
                balance=account.balance,
                pending_refund=account.pending_refund,
                settled_nonce=account.nonce,
                signer=account.signer,
            )
        return prior

    def _count(self, event: Event, duplicate: bool) -> None:
        self.published += 1
        if duplicate:
            self.duplicates += 1
            log.warning("JetStream already had %s %s", event.SUBJECT, event.event_id)
        self.metrics.published(type(event).__name__, duplicate)

    # ------------------------------------------------------------ start, backfill, reorg

    async def backfill(self, confirmed: int) -> tuple[Cursor, int]:
        """Rebuilds the Redis view from the contract's views as of block `confirmed`, and
        resumes publishing after the stream's last chain event (or after `confirmed` on a
        first start). Returns the cursor and the backfill block."""
        block_hash = await self._canonical_hash(confirmed)
        if block_hash is None:
            raise ChainMoved(f"block {confirmed} vanished")
        accounts = await accounts_at(self.serving, confirmed)
        services = await services_at(self.serving, confirmed)
        for account in accounts:
            key = account_key_of(account.user, account.provider)
            await self.projection.replace_account(key, account, confirmed, force=False)
        await self.projection.replace_registry(services)
        tail = await self._verified_tail()
        cursor = tail or Cursor(block=confirmed, block_hash=block_hash)
        await self.checkpoint.start_over(cursor, confirmed, await self._deployment_tag())
        self.metrics.backfill()
        log.info(
            "rebuilt Redis from the contract at block %s (%s accounts, %s services); "
            "publishing resumes after block %s log %s",
            confirmed,
            len(accounts),
            len(services),
            cursor.block,
            cursor.log_index,
        )
        return cursor, confirmed

    async def _deployment_tag(self) -> str:
        if self._deployment is None:
            identity = await identify(self.w3, self.serving.address)
            self._deployment = identity.model_dump_json()
        return self._deployment

    async def _is_ours(self, cursor: Cursor) -> bool:
        """Whether the checkpoint in Redis was made on this deployment. One from before
        checkpoints named their deployment is adopted if its block is on this chain."""
        ours = await self._deployment_tag()
        found = await self.checkpoint.deployment()
        if found == ours:
            return True
        if found is None and await self._canonical_hash(cursor.block) == cursor.block_hash:
            await self.checkpoint.claim(ours)
            return True
        log.warning(
            "the checkpoint in Redis (block %s) was made on another deployment (%s), not on "
            "this one (%s): starting over from the contract's views",
            cursor.block,
            _shown(found) if found else "a chain without this block",
            _shown(ours),
        )
        return False

    async def _resume(self, cursor: Cursor) -> Cursor:
        """At start: the stream may be ahead of the cursor by the log published just before a
        crash; resume after whichever is further."""
        tail = await self._verified_tail()
        if tail is not None and tail.sort_key() > cursor.sort_key():
            log.info(
                "stream is ahead of the cursor: resuming after block %s log %s",
                tail.block,
                tail.log_index,
            )
            await self.checkpoint.save(tail)
            return tail
        return cursor

    async def _verified_tail(self) -> Cursor | None:
        """The stream's last chain event, if its log is this contract's and still canonical."""
        positions = await self._published(1)
        if not positions:
            return None
        position = positions[0]
        if await self.serving.event_at(position) is None:
            log.warning(
                "the stream's last chain event (block %s, tx %s) is not a canonical log of %s: "
                "ignoring it",
                position.block_number,
                position.transaction_hash,
                self.serving.address,
            )
            return None
        return Cursor(
            block=position.block_number,
            block_hash=position.block_hash,
            log_index=position.log_index,
        )

    async def _roll_back(self, cursor: Cursor, head: int, confirmed: int) -> None:
        ancestor: tuple[int, str] | None = None
        for number, block_hash in await self.checkpoint.recent_blocks(cursor.block):
            if number <= head and await self._canonical_hash(number) == block_hash:
                ancestor = (number, block_hash)
                break
        self.reorgs += 1
        self.metrics.reorg()
        if ancestor is None:
            await self._roll_back_deep(cursor, head, confirmed)
            return
        number, block_hash = ancestor
        read_at = min(max(number, confirmed), head)
        touched = await self.checkpoint.touched_after(number)
        for member in touched:
            kind, first, second = parse_touched(member)
            if kind == "acct":
                key = (first, second)
                account = await account_at(self.serving, first, second, read_at)
                await self.projection.replace_account(key, account, read_at, force=True)
                await self.projection.drop_settlements_after(key, number)
            else:
                service = await service_at(self.serving, first, second, read_at)
                await self.projection.replace_service(first, second, service)
        await self._publish_reorg(cursor, number)
        floor = await self.checkpoint.backfilled_at()
        if floor is not None and floor > number:
            # The backfill itself read dropped blocks: write everything replayed above it.
            await self.checkpoint.mark_backfilled(number)
        await self.checkpoint.forget_after(number)
        await self.checkpoint.save(Cursor(block=number, block_hash=block_hash))
        log.warning(
            "reorg: block %s (%s) no longer canonical; common ancestor %s; re-read %s "
            "accounts/services at block %s",
            cursor.block,
            cursor.block_hash,
            number,
            len(touched),
            read_at,
        )

    async def _roll_back_deep(self, cursor: Cursor, head: int, confirmed: int) -> None:
        """A reorg below the journal: the newest published event still canonical is the anchor.
        Everything is re-read from the views, and indexing resumes right after that event."""
        anchor: LogPosition | None = None
        for position in await self._published(DEEP_REORG_SCAN):
            number = position.block_number
            if number <= head and await self._canonical_hash(number) == position.block_hash:
                anchor = position
                break
        read_at = max(confirmed, anchor.block_number if anchor else 0)
        read_at = min(read_at, head)
        accounts = await accounts_at(self.serving, read_at)
        for account in accounts:
            key = account_key_of(account.user, account.provider)
            await self.projection.replace_account(key, account, read_at, force=True)
            if anchor is not None:
                await self.projection.drop_settlements_after(key, anchor.block_number)
        await self.projection.replace_registry(await services_at(self.serving, read_at))
        if anchor is None:
            # Nothing published is canonical any more: start again from the view at read_at.
            log.error(
                "reorg below block %s deeper than the journal and the stream: rebuilt from the "
                "views at block %s; logs in between are not published",
                cursor.block,
                read_at,
            )
            common = max(min(read_at, cursor.block - 1), 0)
            block_hash = await self._canonical_hash(read_at)
            if block_hash is None:
                raise ChainMoved(f"block {read_at} vanished")
            resume = Cursor(block=read_at, block_hash=block_hash)
        else:
            common = anchor.block_number
            resume = Cursor(
                block=anchor.block_number,
                block_hash=anchor.block_hash,
                log_index=anchor.log_index,
            )
            log.warning(
                "reorg below the %s-block journal (cursor block %s): resuming after the newest "
                "canonical published log, block %s log %s; all accounts re-read at block %s",
                self.checkpoint.window,
                cursor.block,
                anchor.block_number,
                anchor.log_index,
                read_at,
            )
        await self._publish_reorg(cursor, common)
        await self.checkpoint.start_over(resume, resume.block, await self._deployment_tag())
        self.metrics.backfill()

    async def _publish_reorg(self, cursor: Cursor, ancestor: int) -> None:
        event = ReorgDetectedV1(
            event_id=f"chain-reorg-{cursor.block_hash}-{ancestor}",
            common_ancestor=ancestor,
            dropped_from=ancestor + 1,
            depth=max(cursor.block - ancestor, 1),
        )
        self._count(event, await self._publish(event))

    # ------------------------------------------------------------ chain reads

    async def _canonical_hash(self, number: int) -> str | None:
        """The canonical block's hash at `number`, or None if the chain is shorter."""
        try:
            block = await self.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        block_hash = block.get("hash")
        return hex32(block_hash) if block_hash is not None else None

    async def _get_lock_time(self) -> int:
        if self._lock_time is None:
            self._lock_time = await self.serving.lock_time()
        return self._lock_time


def _shown(deployment: str) -> str:
    with contextlib.suppress(ValueError):
        return str(DeploymentIdentity.model_validate_json(deployment))
    return deployment


def _position(event: ServingEvent) -> LogPosition:
    if event.position is None:
        raise ValueError(f"{event.EVENT} has no log position")
    return event.position


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, ChainMoved):
        return "chain_moved"
    if isinstance(exc, RedisError):
        return "redis"
    if isinstance(exc, ClientError | OSError | TimeoutError | Web3Exception | ChainError):
        return "rpc"
    return type(exc).__name__


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
