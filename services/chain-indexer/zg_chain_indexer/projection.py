# SPDX-License-Identifier: Apache-2.0
"""The indexer's writes to Redis: accounts (through `AccountStore`), their refunds and
confirmed settlements, and the service registry (through `ServiceRegistry`).

Every write is idempotent, so that a block projected twice (a restart between projecting and
publishing) leaves the same view: account fields are absolute and never go back to an older
block, refunds are set field by field, settlements are sorted-set members.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from zg_chain_indexer.fold import AccountKey, AccountView, BlockChanges, RefundChange
from zg_shared.accounts import (
    AccountStore,
    ConfirmedSettlement,
    account_key,
    redis_text,
    refunds_key,
    settlements_key,
)
from zg_shared.chain.models import Account, Refund, Service
from zg_shared.registry import PREFIX as SERVICES_PREFIX
from zg_shared.registry import ServiceRegistry, services_key

log = logging.getLogger(__name__)

CHAIN_FIELDS = ("chain_block", "balance", "pending_refund", "settled_nonce", "signer_x", "signer_y")


class Projection:
    def __init__(self, redis: Redis, settlements_kept: int = 100) -> None:
        self.redis = redis
        self.accounts = AccountStore(redis)
        self.registry = ServiceRegistry(redis)
        self.settlements_kept = settlements_kept

    async def prior(self, keys: Iterable[AccountKey]) -> dict[AccountKey, AccountView]:
        """The stored state of each account that Redis knows (from the chain)."""
        found: dict[AccountKey, AccountView] = {}
        for key in keys:
            state = await self.accounts.read(*key)
            if state is not None and state.known_on_chain:
                found[key] = AccountView(
                    balance=state.balance,
                    pending_refund=state.pending_refund,
                    settled_nonce=state.settled_nonce,
                    signer=state.signer,
                )
        return found

    async def write_block(self, block: int, changes: BlockChanges, *, floor: int) -> None:
        """Projects one block. Blocks at or below `floor` are already in a view rebuilt from the
        contract (a backfill after a flush): only their settlements are added then."""
        if block > floor:
            for key, view in changes.accounts.items():
                await self.accounts.apply_chain_account(view.to_account(key), block)
            for key, patches in changes.refunds.items():
                await self._patch_refunds(key, patches)
            for service in changes.services_put.values():
                await self.registry.put(service)
            for provider, name in changes.services_removed:
                await self.registry.remove(provider, name)
        for s in changes.settlements:
            skey = settlements_key(s.user, s.provider)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(skey, {s.to_json(): s.score})
                pipe.zremrangebyrank(skey, 0, -self.settlements_kept - 1)
                await pipe.execute()

    async def _patch_refunds(self, key: AccountKey, patches: list[RefundChange]) -> None:
        hkey = refunds_key(*key)
        for patch in patches:
            raw = await self.redis.hget(hkey, str(patch.index))
            if raw is not None:
                stored = Refund.model_validate_json(raw)
            elif patch.created_at is not None:
                stored = Refund(amount=0, created_at=patch.created_at, processed=False)
            else:
                log.warning(
                    "refund %s of %s unknown in Redis; storing what the log says",
                    patch.index,
                    key,
                )
                stored = Refund(amount=0, created_at=0, processed=False)
            updates: dict[str, Any] = {}
            if patch.amount is not None:
                updates["amount"] = patch.amount
            if patch.created_at is not None:
                updates["created_at"] = patch.created_at
            if patch.processed is not None:
                updates["processed"] = patch.processed
            await self.redis.hset(
                hkey, str(patch.index), stored.model_copy(update=updates).model_dump_json()
            )

    # ------------------------------------------------------------ whole-entity replacement

    async def replace_account(
        self, key: AccountKey, account: Account | None, block: int, *, force: bool
    ) -> None:
        """Sets the account's chain fields and refunds to the contract's view at `block`
        (`force`: even over a newer block's view); None removes what the chain no longer has."""
        if account is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(account_key(*key), *CHAIN_FIELDS)
                pipe.delete(refunds_key(*key))
                await pipe.execute()
            return
        await self.accounts.apply_chain_account(account, block, force=force)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(refunds_key(*key))
            if account.refunds:
                pipe.hset(
                    refunds_key(*key),
                    mapping={str(i): r.model_dump_json() for i, r in enumerate(account.refunds)},
                )
            await pipe.execute()

    async def drop_settlements_after(self, key: AccountKey, block: int) -> None:
        await self.redis.zremrangebyscore(settlements_key(*key), block + 1, "+inf")

    async def replace_service(self, provider: str, name: str, service: Service | None) -> None:
        if service is None:
            await self.registry.remove(provider, name)
        else:
            await self.registry.put(service)

    async def replace_registry(self, services: list[Service]) -> None:
        """The whole registry as listed: providers the list lacks lose their entries."""
        by_provider: dict[str, list[Service]] = {}
        for service in services:
            by_provider.setdefault(service.provider.lower(), []).append(service)
        stale = [
            key
            async for key in self.redis.scan_iter(match=f"{SERVICES_PREFIX}:*")
            if redis_text(key).removeprefix(f"{SERVICES_PREFIX}:") not in by_provider
        ]
        async with self.redis.pipeline(transaction=True) as pipe:
            if stale:
                pipe.delete(*stale)
            for provider, listed in by_provider.items():
                pipe.delete(services_key(provider))
                pipe.hset(
                    services_key(provider),
                    mapping={s.name: s.model_dump_json() for s in listed},
                )
            await pipe.execute()

    async def settlements(self, user: str, provider: str) -> list[ConfirmedSettlement]:
        """Confirmed settlements of the account, newest first."""
        return await AccountStore(self.redis).settlements(user, provider)

    async def refunds(self, user: str, provider: str) -> dict[int, Refund]:
        raw: dict[Any, Any] = await self.redis.hgetall(refunds_key(user, provider))
        return {int(redis_text(k)): Refund.model_validate_json(v) for k, v in raw.items()}
