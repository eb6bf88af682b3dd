# SPDX-License-Identifier: Apache-2.0
"""The indexer's pure parts: folding a block's logs into changes and events, and the cursor."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zg_chain_indexer.checkpoint import Cursor
from zg_chain_indexer.config import IndexerSettings
from zg_chain_indexer.fold import (
    AccountView,
    RefundChange,
    fold_block,
    parse_touched,
    touched_accounts,
)
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
from zg_shared.chain.models import Service
from zg_shared.events.chain import (
    AccountUpdatedV1,
    FeesSettledV1,
    RefundRequestedV1,
    ServiceRemovedV1,
    ServiceUpdatedV1,
    SignerRotatedV1,
    chain_event_id,
)

USER = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
PROVIDER = "0x" + "aa" * 20
BLOCK_HASH = "0x" + "b0" * 32
LOCK = 3600


class Logs:
    """Builds one block's logs, one transaction per `tx()` call, log indices in order."""

    def __init__(self) -> None:
        self.events: list[ServingEvent] = []
        self._tx = 0

    def tx(self, *events: ServingEvent) -> Logs:
        self._tx += 1
        for event in events:
            position = LogPosition(
                block_number=7,
                block_hash=BLOCK_HASH,
                transaction_hash="0x" + f"{self._tx:064x}",
                log_index=len(self.events),
            )
            self.events.append(event.model_copy(update={"position": position}))
        return self


def balance(user: str, value: int, pending: int = 0) -> BalanceUpdated:
    return BalanceUpdated(user=user, provider=PROVIDER, balance=value, pending_refund=pending)


def test_each_account_change_is_one_update_at_its_balance_log_naming_the_cause() -> None:
    logs = Logs()
    logs.tx(
        AccountAdded(user=USER, provider=PROVIDER, signer_x=5, signer_y=6, amount=100),
        balance(USER, 100),
    )
    logs.tx(FundDeposited(user=USER, provider=PROVIDER, amount=50), balance(USER, 150))
    logs.tx(
        RefundRequested(user=USER, provider=PROVIDER, index=0, amount=40, unlock_at=LOCK + 99),
        balance(USER, 150, 40),
    )

    changes = fold_block(logs.events, {}, LOCK)

    kinds = [type(e) for _, e in changes.events]
    assert kinds == [AccountUpdatedV1, AccountUpdatedV1, RefundRequestedV1, AccountUpdatedV1]
    updates = [e for _, e in changes.events if isinstance(e, AccountUpdatedV1)]
    assert [(u.cause, u.balance, u.pending_refund, u.signer) for u in updates] == [
        ("AccountAdded", 100, 0, (5, 6)),
        ("FundDeposited", 150, 0, (5, 6)),
        ("RefundRequested", 150, 40, (5, 6)),
    ]
    assert [p.log_index for p, _ in changes.events] == [1, 3, 4, 5]
    assert all(e.event_id == chain_event_id(p) for p, e in changes.events)
    key = (updates[0].user, updates[0].provider)
    assert changes.accounts[key] == AccountView(150, 40, 0, (5, 6))
    assert changes.refunds[key] == [RefundChange(0, amount=40, created_at=99, processed=False)]


def test_a_settlement_moves_the_nonce_and_takes_refunds_in_one_transaction() -> None:
    logs = Logs().tx(
        RefundReduced(user=USER, provider=PROVIDER, index=1, remaining=0),
        RefundReduced(user=USER, provider=PROVIDER, index=0, remaining=20),
        FeesSettled(user=USER, provider=PROVIDER, amount=80, final_nonce=4),
        balance(USER, 20, 20),
        FeesSettled(user=OTHER, provider=PROVIDER, amount=10, final_nonce=2),
        balance(OTHER, 90),
        FeesSettled(user=OTHER, provider=PROVIDER, amount=5, final_nonce=3),
        balance(OTHER, 85),
    )
    assert len(touched_accounts(logs.events)) == 2
    prior_user = AccountView(100, 100, 0, (1, 1))
    keys = sorted(touched_accounts(logs.events))
    prior = {
        k: prior_user if k[0].lower() == USER else AccountView(100, 0, 1, (2, 2)) for k in keys
    }

    changes = fold_block(logs.events, prior, LOCK)

    out = [e for _, e in changes.events]
    assert [type(e) for e in out] == [FeesSettledV1, AccountUpdatedV1] * 3
    updates = [e for e in out if isinstance(e, AccountUpdatedV1)]
    assert [(u.cause, u.settled_nonce, u.balance) for u in updates] == [
        ("FeesSettled", 4, 20),
        ("FeesSettled", 2, 90),
        ("FeesSettled", 3, 85),
    ]
    user_key = next(k for k in keys if k[0].lower() == USER)
    assert changes.refunds[user_key] == [
        RefundChange(1, amount=0, processed=True),
        RefundChange(0, amount=20),
    ]
    assert [(s.amount, s.final_nonce) for s in changes.settlements] == [(80, 4), (10, 2), (5, 3)]
    assert changes.settlements[0].score < changes.settlements[1].score


def test_refund_processed_marks_it_and_keeps_the_signer_from_before() -> None:
    logs = Logs().tx(
        RefundProcessed(user=USER, provider=PROVIDER, index=0, amount=40),
        balance(USER, 60),
    )
    key = next(iter(touched_accounts(logs.events)))

    changes = fold_block(logs.events, {key: AccountView(100, 40, 9, (3, 4))}, LOCK)

    [(_, update)] = changes.events
    assert isinstance(update, AccountUpdatedV1)
    assert (update.cause, update.settled_nonce, update.signer) == ("RefundProcessed", 9, (3, 4))
    assert changes.refunds[key] == [RefundChange(0, processed=True)]


def test_a_rotation_publishes_the_new_key_and_the_account_with_it() -> None:
    """Gateways take the key from the account (Redis and AccountUpdatedV1); billing settles
    the account on SignerRotatedV1, while the previous key still settles."""
    logs = Logs().tx(
        SignerRotated(
            user=USER,
            provider=PROVIDER,
            signer_x=7,
            signer_y=8,
            previous_signer_x=3,
            previous_signer_y=4,
            previous_expires_at=5000,
        ),
        balance(USER, 60, 10),
    )
    [key] = touched_accounts(logs.events)

    changes = fold_block(logs.events, {key: AccountView(60, 10, 9, (3, 4))}, LOCK)

    rotated, update = (e for _, e in changes.events)
    assert isinstance(rotated, SignerRotatedV1)
    assert (rotated.signer, rotated.previous_signer, rotated.previous_expires_at) == (
        (7, 8),
        (3, 4),
        5000,
    )
    assert isinstance(update, AccountUpdatedV1)
    assert (update.cause, update.signer, update.settled_nonce) == ("SignerRotated", (7, 8), 9)
    assert changes.accounts[key] == AccountView(60, 10, 9, (7, 8))


def test_services_put_and_removed_the_last_log_wins() -> None:
    service = Service(
        provider=PROVIDER,
        name="chat",
        service_type="chatbot",
        url="http://x/v1",
        model="m",
        verifiability="",
        input_price=1,
        output_price=2,
        signer_address=USER,
        updated_at=5,
    )
    updated = ServiceUpdated(provider=PROVIDER, service=service)
    logs = Logs().tx(updated).tx(ServiceRemoved(provider=PROVIDER, name="chat")).tx(updated)

    changes = fold_block(logs.events, {}, LOCK)

    assert [type(e) for _, e in changes.events] == [
        ServiceUpdatedV1,
        ServiceRemovedV1,
        ServiceUpdatedV1,
    ]
    assert [s.input_price for s in changes.services_put.values()] == [1]
    assert changes.services_removed == set()
    assert {parse_touched(m)[0] for m in changes.touched} == {"svc"}


def test_a_log_without_position_is_refused() -> None:
    with pytest.raises(ValueError, match="no log position"):
        fold_block([balance(USER, 1)], {}, LOCK)


def test_the_cursor_knows_what_is_published() -> None:
    partial = Cursor(block=10, block_hash=BLOCK_HASH, log_index=3)
    done = Cursor(block=10, block_hash=BLOCK_HASH)
    assert (partial.next_block, done.next_block) == (10, 11)
    assert partial.is_after(10, 3)
    assert not partial.is_after(10, 4)
    assert partial.is_after(9, 100)
    assert not partial.is_after(11, 0)
    assert done.is_after(10, 10_000)
    assert (
        partial.sort_key()
        < done.sort_key()
        < Cursor(block=11, block_hash=BLOCK_HASH, log_index=0).sort_key()
    )


def test_settings_need_the_contract() -> None:
    with pytest.raises(ValidationError, match="SERVING_ADDRESS"):
        IndexerSettings()
    settings = IndexerSettings(serving_address=PROVIDER, confirmations=0)
    assert (settings.confirmations, settings.max_block_range) == (0, 500)
