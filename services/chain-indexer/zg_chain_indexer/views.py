# SPDX-License-Identifier: Apache-2.0
"""The contract's views read as of one block, so that a rebuilt view matches a block exactly.

`ServingClient`'s views read the latest state; the indexer needs them pinned to the block it
resumes after (backfill) or rolls back to (reorg), hence these few calls of its own.
"""

from __future__ import annotations

from typing import Any

from web3.exceptions import ContractLogicError

from zg_shared.chain.client import DEFAULT_PAGE, ServingClient
from zg_shared.chain.errors import ContractRevert
from zg_shared.chain.models import Account, Service
from zg_shared.chain.sender import revert_data
from zg_shared.chain.types import checksum


async def _call(serving: ServingClient, block: int, fn: str, *args: Any) -> Any:
    try:
        return await serving.contract.functions[fn](*args).call(block_identifier=block)
    except ContractLogicError as exc:
        raise serving.reverts.decode(revert_data(exc)) from None


async def deployed_at(serving: ServingClient, block: int) -> bool:
    """Whether the contract has code at `block` (a backfill may predate its deployment)."""
    return len(await serving.w3.eth.get_code(serving.address, block_identifier=block)) > 0


async def accounts_at(serving: ServingClient, block: int) -> list[Account]:
    if not await deployed_at(serving, block):
        return []
    accounts: list[Account] = []
    offset = 0
    while True:
        rows = await _call(serving, block, "getAccounts", offset, DEFAULT_PAGE)
        accounts += [Account.model_validate(_as_plain(r)) for r in rows]
        if len(rows) < DEFAULT_PAGE:
            return accounts
        offset += DEFAULT_PAGE


async def services_at(serving: ServingClient, block: int) -> list[Service]:
    if not await deployed_at(serving, block):
        return []
    services: list[Service] = []
    offset = 0
    while True:
        rows = await _call(serving, block, "getServices", offset, DEFAULT_PAGE)
        services += [Service.model_validate(_as_plain(r)) for r in rows]
        if len(rows) < DEFAULT_PAGE:
            return services
        offset += DEFAULT_PAGE


async def account_at(
    serving: ServingClient, user: str, provider: str, block: int
) -> Account | None:
    """The account as of `block`, or None if it does not exist there."""
    try:
        row = await _call(serving, block, "getAccount", checksum(user), checksum(provider))
    except ContractRevert as exc:
        if exc.name == "ServingAccountNotFound":
            return None
        raise
    return Account.model_validate(_as_plain(row))


async def service_at(
    serving: ServingClient, provider: str, name: str, block: int
) -> Service | None:
    try:
        row = await _call(serving, block, "getService", checksum(provider), name)
    except ContractRevert as exc:
        if exc.name == "ServingServiceNotFound":
            return None
        raise
    return Service.model_validate(_as_plain(row))


def _as_plain(value: Any) -> Any:
    """Decoded structs (named tuples) as dicts keyed by their ABI names, all the way down."""
    if hasattr(value, "_asdict"):
        return {name: _as_plain(item) for name, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_as_plain(item) for item in value]
    return value
