# SPDX-License-Identifier: Apache-2.0
"""Each (user, provider) account's live state in Redis, shared by three services.

One hash per account, with fields owned by whoever changes them:

- indexer (or the gateway's loader): `balance, pending_refund, settled_nonce, signer_x,
  signer_y`, the contract's view as of `chain_block`;
- gateway: `unsettled` (signed fees served, not yet settled), `reserved` (output fees at
  risk in requests being served), `output_debt` (output fees of finished responses that no
  later request has paid yet), `admitted_key` and `key_floor` (the key requests were last
  admitted under, and the nonce its requests must be above: after a rotation, every nonce
  admitted before it);
- billing: `sealed_nonce` (nonces at or below it belong to a batch; the gateway refuses them);

and two sorted sets of zero-padded nonces (`zg_shared.lua`): `:nonces`, every nonce accepted
above the sealed nonce (never accepted twice), and `:inflight`, the nonces still being
served (with the hash `:inflightmeta` holding what each reserved). All keys of one account
share a Redis Cluster hash tag, so one Lua script can touch them atomically.

Amounts are decimal strings (wei overflows Redis integers and Lua numbers). Redis is a view:
the served-request stream and the chain can rebuild all of it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from zg_shared.chain.client import ServingClient
from zg_shared.chain.models import Account, Refund

PREFIX = "zg:acct"


def account_key(user: str, provider: str) -> str:
    return f"{PREFIX}:{{{provider.lower()}:{user.lower()}}}"


def nonces_key(user: str, provider: str) -> str:
    return account_key(user, provider) + ":nonces"


def inflight_key(user: str, provider: str) -> str:
    return account_key(user, provider) + ":inflight"


def inflight_meta_key(user: str, provider: str) -> str:
    """Hash: in-flight nonce member -> "fee prev reservation admitted_ms"."""
    return account_key(user, provider) + ":inflightmeta"


def refunds_key(user: str, provider: str) -> str:
    """Hash kept by the chain indexer: refund index -> the contract's `Refund` as JSON."""
    return account_key(user, provider) + ":refunds"


def settlements_key(user: str, provider: str) -> str:
    """Sorted set kept by the chain indexer: confirmed settlements (JSON), scored by block,
    capped to the newest few."""
    return account_key(user, provider) + ":settlements"


class AccountState(BaseModel):
    model_config = ConfigDict(frozen=True)

    balance: int = 0
    pending_refund: int = 0
    settled_nonce: int = 0
    signer_x: int = 0
    signer_y: int = 0
    chain_block: int = -1
    unsettled: int = 0
    reserved: int = 0
    output_debt: int = 0
    sealed_nonce: int = 0

    @property
    def known_on_chain(self) -> bool:
        return self.chain_block >= 0

    @property
    def signer(self) -> tuple[int, int]:
        return (self.signer_x, self.signer_y)

    @property
    def exposure(self) -> int:
        """What the provider may still collect from this balance: signed but unsettled fees,
        unpaid output fees, and the output fees at risk in requests being served."""
        return self.unsettled + self.output_debt + self.reserved

    @property
    def spendable(self) -> int:
        return self.balance - self.pending_refund - self.exposure


# Applies the chain's view unless a newer block's view is already there: the indexer and the
# gateway's loader may race, and an older read must never overwrite a newer one. ARGV[7] = "1"
# forces it: the indexer rolling back blocks a reorg dropped.
_APPLY_CHAIN_STATE = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'chain_block') or '-1')
if ARGV[7] ~= '1' and tonumber(ARGV[1]) < stored then return 0 end
redis.call('HSET', KEYS[1], 'chain_block', ARGV[1], 'balance', ARGV[2], 'pending_refund', ARGV[3],
  'settled_nonce', ARGV[4], 'signer_x', ARGV[5], 'signer_y', ARGV[6])
return 1
"""


class ConfirmedSettlement(BaseModel):
    """One FeesSettled the chain indexer confirmed, as it keeps them per account."""

    model_config = ConfigDict(frozen=True)

    amount: int
    final_nonce: int
    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int


class AccountStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._apply = redis.register_script(_APPLY_CHAIN_STATE)

    async def refunds(self, user: str, provider: str) -> list[Refund]:
        """The account's refunds as the indexer keeps them, by index."""
        raw: dict[Any, Any] = await self.redis.hgetall(refunds_key(user, provider))
        ordered = sorted(raw.items(), key=lambda item: int(redis_text(item[0])))
        return [Refund.model_validate_json(value) for _, value in ordered]

    async def settlements(self, user: str, provider: str) -> list[ConfirmedSettlement]:
        """The account's newest confirmed settlements, newest first."""
        raw: list[Any] = await self.redis.zrevrange(settlements_key(user, provider), 0, -1)
        return [ConfirmedSettlement.model_validate_json(value) for value in raw]

    async def read(self, user: str, provider: str) -> AccountState | None:
        raw: dict[Any, Any] = await self.redis.hgetall(account_key(user, provider))
        if not raw:
            return None
        fields = {
            redis_text(k): int(v)
            for k, v in raw.items()
            if redis_text(k) in AccountState.model_fields
        }
        return AccountState(**fields)

    async def signer(self, user: str, provider: str) -> tuple[int, int] | None:
        """The account's signing key as Redis has it from the chain; None if unknown."""
        raw = await self.redis.hmget(
            account_key(user, provider), ["chain_block", "signer_x", "signer_y"]
        )
        _, x, y = raw
        if raw[0] is None or x is None or y is None:
            return None
        return (int(x), int(y))

    async def load_from_chain(self, serving: ServingClient, user: str, provider: str) -> Account:
        """Reads the account from the contract into Redis and returns it; ContractRevert
        (ServingAccountNotFound) if there is none."""
        # The block first: the account read after it is at least that new, so a newer view
        # the indexer writes is never refused as older.
        block = await serving.w3.eth.block_number
        account = await serving.get_account(user, provider)
        await self.apply_chain_account(account, block)
        return account

    async def apply_chain_account(
        self, account: Account, block: int, *, force: bool = False
    ) -> bool:
        """Stores the contract's view of `account` as of `block`; False if a newer one is there.

        `force` stores it even over a newer block's view: for a reorg that dropped that block.
        """
        applied = await self._apply(
            keys=[account_key(account.user, account.provider)],
            args=[
                block,
                account.balance,
                account.pending_refund,
                account.nonce,
                account.signer[0],
                account.signer[1],
                "1" if force else "0",
            ],
        )
        return bool(applied)


def redis_text(value: bytes | str | int) -> str:
    """A Redis reply (bytes unless the client decodes) or a script's integer, as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
