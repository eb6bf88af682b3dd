# SPDX-License-Identifier: Apache-2.0
"""The settlement policy: which accounts are due, and why."""

from __future__ import annotations

import pytest

from zg_billing.policy import Policy, Reason

LOCK_TIME_S = 3600
NOW = 10_000_000


@pytest.fixture
def policy() -> Policy:
    return Policy.from_lock_time(
        LOCK_TIME_S, threshold_fee_wei=1000, max_age_lock_fraction=0.5, sweep_interval_s=600
    )


def due(policy: Policy, **overrides: object) -> Reason | None:
    values: dict[str, object] = {
        "unsettled_fee": 10,
        "oldest_ms": NOW,
        "flagged": "",
        "now_ms": NOW,
        "sweeping": False,
        **overrides,
    }
    return policy.due(**values)  # type: ignore[arg-type]


def test_a_small_young_account_waits(policy: Policy) -> None:
    assert due(policy) is None


def test_enough_fee_is_due(policy: Policy) -> None:
    assert due(policy, unsettled_fee=1000) is Reason.THRESHOLD


def test_age_is_measured_against_the_lock_time(policy: Policy) -> None:
    assert policy.max_age_s == 1800
    assert due(policy, oldest_ms=NOW - 1_799_999) is None
    assert due(policy, oldest_ms=NOW - 1_800_000) is Reason.AGE


def test_a_refund_or_a_retry_makes_it_due_at_once(policy: Policy) -> None:
    assert due(policy, flagged="refund") is Reason.REFUND
    assert due(policy, flagged="retry") is Reason.RETRY


def test_the_sweep_takes_whatever_is_left(policy: Policy) -> None:
    assert due(policy, sweeping=True) is Reason.SWEEP


def test_nothing_unsettled_is_never_due(policy: Policy) -> None:
    assert due(policy, unsettled_fee=0, flagged="refund", sweeping=True) is None
