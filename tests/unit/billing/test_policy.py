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
        LOCK_TIME_S,
        threshold_fee_wei=1000,
        max_age_lock_fraction=0.5,
        sweep_interval_s=600,
        full_chunk=64,
    )


def due(policy: Policy, **overrides: object) -> Reason | None:
    values: dict[str, object] = {
        "unsettled_fee": 10,
        "oldest_ms": NOW,
        "flagged": "",
        "now_ms": NOW,
        "sweeping": False,
        "unsettled_count": 1,
        **overrides,
    }
    return policy.due(**values)  # type: ignore[arg-type]


def joins(policy: Policy, **overrides: int) -> bool:
    values = {"unsettled_fee": 10, "unsettled_count": 1, "oldest_ms": NOW, "now_ms": NOW}
    return policy.joins(**{**values, **overrides})


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


def test_a_whole_chunk_of_the_largest_size_is_due(policy: Policy) -> None:
    assert due(policy, unsettled_count=63) is None
    assert due(policy, unsettled_count=64) is Reason.FULL
    assert due(policy, unsettled_count=130) is Reason.FULL


def test_the_risk_bounds_come_before_a_full_chunk(policy: Policy) -> None:
    """Those settle everything; FULL only the whole chunks."""
    assert due(policy, unsettled_count=64, oldest_ms=NOW - 1_800_000) is Reason.AGE
    assert due(policy, unsettled_count=64, unsettled_fee=1000) is Reason.THRESHOLD
    assert due(policy, unsettled_count=64, flagged="refund") is Reason.REFUND
    assert due(policy, unsettled_count=64, sweeping=True) is Reason.SWEEP


def test_without_a_chunk_size_there_is_no_full_rule() -> None:
    policy = Policy(threshold_fee_wei=1000, max_age_s=1800, sweep_interval_s=600)
    assert due(policy, unsettled_count=10_000) is None


def test_an_account_half_way_to_due_joins_a_settlement(policy: Policy) -> None:
    assert not joins(policy, unsettled_count=31, oldest_ms=NOW - 899_999, unsettled_fee=499)
    assert joins(policy, unsettled_count=32)  # half a chunk
    assert joins(policy, oldest_ms=NOW - 900_000)  # half the age threshold
    assert joins(policy, unsettled_fee=500)  # half the fee threshold
    assert not joins(policy, unsettled_fee=0, unsettled_count=64)


def test_joining_can_be_turned_off() -> None:
    policy = Policy(
        threshold_fee_wei=1000, max_age_s=1800, sweep_interval_s=600, full_chunk=64,
        join_fraction=0,
    )  # fmt: skip
    assert not joins(policy, unsettled_count=63, oldest_ms=NOW - 1_799_999)
