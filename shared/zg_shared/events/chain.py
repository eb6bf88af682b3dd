# SPDX-License-Identifier: Apache-2.0
"""Events the chain indexer publishes about what it saw on chain (`chain.>` subjects).

Each one carries the log it came from (`position`) and is published only once the log is
`confirmations` blocks deep. Its `event_id` is derived from the block hash and log index, so
a restarted indexer that publishes the same log again produces a duplicate JetStream drops;
a log re-mined in another block after a reorg is a different event. The indexer writes
Redis before it publishes, so a consumer that reacts to an event finds Redis at least as new.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from zg_shared.chain.events import LogPosition
from zg_shared.chain.models import Service
from zg_shared.chain.types import Address, Uint256, Wei
from zg_shared.events.base import Event


def chain_event_id(position: LogPosition) -> str:
    return f"chain-{position.block_hash}-{position.log_index}"


class ChainEvent(Event):
    position: LogPosition


class AccountUpdatedV1(ChainEvent):
    """An account's state after the log: from AccountAdded, FundDeposited, BalanceUpdated,
    RefundProcessed, RefundReduced, SignerRotated or FeesSettled (`cause` names which)."""

    SUBJECT: ClassVar[str] = "chain.account.updated.v1"

    user: Address
    provider: Address
    balance: Wei
    pending_refund: Wei
    settled_nonce: Uint256
    signer: tuple[Uint256, Uint256]
    cause: str


class RefundRequestedV1(ChainEvent):
    SUBJECT: ClassVar[str] = "chain.refund.requested.v1"

    user: Address
    provider: Address
    index: int = Field(ge=0)
    amount: Wei
    unlock_at: int = Field(description="Unix time after which the user may take it back")


class SignerRotatedV1(ChainEvent):
    """The user replaced their request-signing key: gateways accept only `signer` from now on;
    requests the previous key signed still settle until `previous_expires_at`, so billing
    settles that account now."""

    SUBJECT: ClassVar[str] = "chain.signer.rotated.v1"

    user: Address
    provider: Address
    signer: tuple[Uint256, Uint256]
    previous_signer: tuple[Uint256, Uint256]
    previous_expires_at: int = Field(description="Unix time the previous key stops settling")


class FeesSettledV1(ChainEvent):
    """A confirmed settlement of one chunk: the provider was paid `amount` for the user's
    requests up to `final_nonce`."""

    SUBJECT: ClassVar[str] = "chain.fees.settled.v1"

    user: Address
    provider: Address
    amount: Wei
    final_nonce: Uint256


class ServiceUpdatedV1(ChainEvent):
    SUBJECT: ClassVar[str] = "chain.service.updated.v1"

    service: Service


class ServiceRemovedV1(ChainEvent):
    SUBJECT: ClassVar[str] = "chain.service.removed.v1"

    provider: Address
    name: str


class ReorgDetectedV1(Event):
    """The indexer found that blocks it had indexed are no longer canonical, and rolled its
    view back to `common_ancestor` before re-reading forward."""

    SUBJECT: ClassVar[str] = "chain.reorg.detected.v1"

    common_ancestor: int
    dropped_from: int
    depth: int = Field(ge=1)
