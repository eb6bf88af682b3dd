# SPDX-License-Identifier: Apache-2.0
"""What one block's logs do to the indexer's view, as plain data: no Redis, no RPC.

`fold_block` walks a block's decoded logs in chain order, starting from each touched account's
state before the block, and returns the accounts' states after it, the refund and registry
changes, the confirmed settlements, and the events to publish (in log order). Each account
change in the contract ends with an absolute `BalanceUpdated`, so that log is where an
`AccountUpdatedV1` is published, carrying the account as it stood right after it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from zg_shared.accounts import ConfirmedSettlement
from zg_shared.chain.events import (
    AccountAdded,
    BalanceUpdated,
    FeesSettled,
    FundDeposited,
    LogPosition,
    RefundProcessed,
    RefundReduced,
    RefundRequested,
    ServiceRemoved,
    ServiceUpdated,
    ServingEvent,
    SignerRotated,
)
from zg_shared.chain.models import Account, Service
from zg_shared.chain.types import checksum
from zg_shared.events.base import Event
from zg_shared.events.chain import (
    AccountUpdatedV1,
    FeesSettledV1,
    RefundRequestedV1,
    ServiceRemovedV1,
    ServiceUpdatedV1,
    SignerRotatedV1,
    chain_event_id,
)

ACCOUNT_EVENTS = (
    AccountAdded,
    FundDeposited,
    RefundRequested,
    RefundProcessed,
    RefundReduced,
    SignerRotated,
    BalanceUpdated,
    FeesSettled,
)

AccountKey = tuple[str, str]
"""(user, provider), both checksummed."""


def account_key_of(user: str, provider: str) -> AccountKey:
    return (checksum(user), checksum(provider))


@dataclass(frozen=True)
class AccountView:
    """The chain fields of one account that the indexer keeps in Redis."""

    balance: int = 0
    pending_refund: int = 0
    settled_nonce: int = 0
    signer: tuple[int, int] = (0, 0)

    def to_account(self, key: AccountKey) -> Account:
        return Account(
            user=key[0],
            provider=key[1],
            nonce=self.settled_nonce,
            balance=self.balance,
            pending_refund=self.pending_refund,
            signer=self.signer,
            refunds=(),
            additional_info="",
        )


@dataclass(frozen=True)
class RefundChange:
    """A refund as created (`created_at` set) or patched (amount and/or processed)."""

    index: int
    amount: int | None = None
    created_at: int | None = None
    processed: bool | None = None


@dataclass(frozen=True)
class Settlement:
    user: str
    provider: str
    amount: int
    final_nonce: int
    position: LogPosition

    @property
    def score(self) -> float:
        """Chain order as a sorted-set score: block, then log index (below a million)."""
        return self.position.block_number + self.position.log_index / 1_000_000

    def to_json(self) -> str:
        """The sorted-set member: `zg_shared.accounts.ConfirmedSettlement`, which readers
        (the gateway's marketplace page) parse; deterministic, so re-projecting is harmless."""
        return ConfirmedSettlement(
            amount=self.amount,
            final_nonce=self.final_nonce,
            block_number=self.position.block_number,
            block_hash=self.position.block_hash,
            transaction_hash=self.position.transaction_hash,
            log_index=self.position.log_index,
        ).model_dump_json()


@dataclass
class BlockChanges:
    accounts: dict[AccountKey, AccountView] = field(default_factory=dict)
    refunds: dict[AccountKey, list[RefundChange]] = field(default_factory=dict)
    settlements: list[Settlement] = field(default_factory=list)
    services_put: dict[tuple[str, str], Service] = field(default_factory=dict)
    services_removed: set[tuple[str, str]] = field(default_factory=set)
    events: list[tuple[LogPosition, Event]] = field(default_factory=list)

    @property
    def touched(self) -> set[str]:
        """Journal members naming what this block changed (see `touched_member`)."""
        members = {touched_member("acct", *k) for k in self.accounts}
        members |= {touched_member("acct", *k) for k in self.refunds}
        members |= {touched_member("svc", *k) for k in self.services_put}
        members |= {touched_member("svc", *k) for k in self.services_removed}
        return members


def touched_member(kind: str, first: str, second: str) -> str:
    return json.dumps([kind, first, second])


def parse_touched(member: str) -> tuple[str, str, str]:
    kind, first, second = json.loads(member)
    return str(kind), str(first), str(second)


def touched_accounts(events: Sequence[ServingEvent]) -> set[AccountKey]:
    """The accounts whose prior state `fold_block` needs."""
    return {
        account_key_of(e.user, e.provider)
        for e in events
        if isinstance(e, AccountAdded | BalanceUpdated | FeesSettled | SignerRotated)
    }


def fold_block(
    events: Sequence[ServingEvent],
    prior: Mapping[AccountKey, AccountView],
    lock_time: int,
) -> BlockChanges:
    """The changes `events` (one block's, in log order) make, starting from `prior`."""
    changes = BlockChanges()
    # The first account event of a transaction names why the account changed.
    cause: dict[tuple[str, AccountKey], str] = {}
    for event in events:
        position = event.position
        if position is None:
            raise ValueError(f"{event.EVENT} has no log position")
        tx = position.transaction_hash
        if isinstance(event, ServiceUpdated):
            service = event.service
            skey = (service.provider, service.name)
            changes.services_removed.discard(skey)
            changes.services_put[skey] = service
            changes.events.append(
                (
                    position,
                    ServiceUpdatedV1(
                        event_id=chain_event_id(position), position=position, service=service
                    ),
                )
            )
            continue
        if isinstance(event, ServiceRemoved):
            skey = (event.provider, event.name)
            changes.services_put.pop(skey, None)
            changes.services_removed.add(skey)
            changes.events.append(
                (
                    position,
                    ServiceRemovedV1(
                        event_id=chain_event_id(position),
                        position=position,
                        provider=event.provider,
                        name=event.name,
                    ),
                )
            )
            continue

        if not isinstance(event, ACCOUNT_EVENTS):
            continue  # an event this indexer does not follow
        key = account_key_of(event.user, event.provider)
        state = changes.accounts.get(key) or prior.get(key) or AccountView()
        if not isinstance(event, BalanceUpdated):
            cause.setdefault((tx, key), event.EVENT)
        if isinstance(event, FeesSettled):
            # A settlement of several chunks emits several FeesSettled; the last one is the
            # cause of the balance change that follows it.
            cause[(tx, key)] = event.EVENT
        match event:
            case AccountAdded():
                changes.accounts[key] = replace(
                    state, signer=(event.signer_x, event.signer_y), settled_nonce=0
                )
            case FundDeposited():
                pass  # the BalanceUpdated that follows carries the new balance
            case RefundRequested():
                changes.refunds.setdefault(key, []).append(
                    RefundChange(
                        index=event.index,
                        amount=event.amount,
                        created_at=event.unlock_at - lock_time,
                        processed=False,
                    )
                )
                changes.events.append(
                    (
                        position,
                        RefundRequestedV1(
                            event_id=chain_event_id(position),
                            position=position,
                            user=key[0],
                            provider=key[1],
                            index=event.index,
                            amount=event.amount,
                            unlock_at=event.unlock_at,
                        ),
                    )
                )
            case RefundProcessed():
                changes.refunds.setdefault(key, []).append(
                    RefundChange(index=event.index, processed=True)
                )
            case RefundReduced():
                changes.refunds.setdefault(key, []).append(
                    RefundChange(
                        index=event.index,
                        amount=event.remaining,
                        processed=True if event.remaining == 0 else None,
                    )
                )
            case SignerRotated():
                # The BalanceUpdated that follows publishes the account with its new key.
                changes.accounts[key] = replace(state, signer=(event.signer_x, event.signer_y))
                changes.events.append(
                    (
                        position,
                        SignerRotatedV1(
                            event_id=chain_event_id(position),
                            position=position,
                            user=key[0],
                            provider=key[1],
                            signer=(event.signer_x, event.signer_y),
                            previous_signer=(event.previous_signer_x, event.previous_signer_y),
                            previous_expires_at=event.previous_expires_at,
                        ),
                    )
                )
            case FeesSettled():
                changes.accounts[key] = replace(state, settled_nonce=event.final_nonce)
                changes.settlements.append(
                    Settlement(key[0], key[1], event.amount, event.final_nonce, position)
                )
                changes.events.append(
                    (
                        position,
                        FeesSettledV1(
                            event_id=chain_event_id(position),
                            position=position,
                            user=key[0],
                            provider=key[1],
                            amount=event.amount,
                            final_nonce=event.final_nonce,
                        ),
                    )
                )
            case BalanceUpdated():
                after = replace(state, balance=event.balance, pending_refund=event.pending_refund)
                changes.accounts[key] = after
                changes.events.append(
                    (
                        position,
                        AccountUpdatedV1(
                            event_id=chain_event_id(position),
                            position=position,
                            user=key[0],
                            provider=key[1],
                            balance=after.balance,
                            pending_refund=after.pending_refund,
                            settled_nonce=after.settled_nonce,
                            signer=after.signer,
                            cause=cause.pop((tx, key), event.EVENT),
                        ),
                    )
                )
    return changes
