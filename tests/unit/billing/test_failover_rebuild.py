# SPDX-License-Identifier: Apache-2.0
"""Billing rebuilds its view from the stream when Sentinel has promoted another Redis (the new
primary may lack the old one's last writes), and only then."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from zg_billing.app import BillingApp


def billing_on(pool: Any) -> Any:
    return SimpleNamespace(redis=SimpleNamespace(connection_pool=pool), _primary=None)


def test_a_moved_primary_is_noticed_once() -> None:
    pool = SimpleNamespace(master_address=None)
    billing = billing_on(pool)
    moved = cast(Any, BillingApp._primary_moved)
    assert moved(billing) is False  # not connected yet
    pool.master_address = ("10.0.0.1", 6379)
    assert moved(billing) is False  # the first primary seen
    assert moved(billing) is False
    pool.master_address = ("10.0.0.2", 6379)
    assert moved(billing) is True  # promoted: rebuild
    assert moved(billing) is False


def test_a_plain_redis_never_moves() -> None:
    billing = billing_on(SimpleNamespace())
    assert cast(Any, BillingApp._primary_moved)(billing) is False
