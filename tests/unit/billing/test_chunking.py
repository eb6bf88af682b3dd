# SPDX-License-Identifier: Apache-2.0
"""Billing's choice of circuit sizes per account (docs/billing.md, "Circuit size")."""

from __future__ import annotations

import pytest

from zg_billing.chunking import CHUNK_GAS, DEFAULT_SLOT_GAS, cut, plan_chunks, whole_chunks


def cost(plan: list[int], slot_gas: int = DEFAULT_SLOT_GAS) -> int:
    return CHUNK_GAS * len(plan) + slot_gas * sum(plan)


def test_a_few_requests_do_not_pay_a_large_chunks_padding() -> None:
    assert plan_chunks(5, [4, 16, 64]) == [16]
    assert plan_chunks(5, [16, 64]) == [16]
    assert plan_chunks(5, [4, 64]) == [4, 4]
    assert plan_chunks(3, [4, 16, 64]) == [4]


def test_a_backlog_uses_the_largest_chunks() -> None:
    assert plan_chunks(200, [4, 16, 64]) == [64, 64, 64, 16]
    assert plan_chunks(256, [4, 16, 64]) == [64, 64, 64, 64]
    assert plan_chunks(200, [64]) == [64, 64, 64, 64]


def test_without_a_slot_price_the_plan_is_the_fewest_chunks() -> None:
    assert plan_chunks(5, [4, 64], slot_gas=0) == [64]
    assert plan_chunks(200, [4, 64], slot_gas=0) == [64, 64, 64, 64]


@pytest.mark.parametrize("count", [1, 2, 4, 5, 17, 63, 64, 65, 129, 300, 1024])
@pytest.mark.parametrize("sizes", [[4], [64], [4, 64], [4, 16, 64], [16, 64, 256]])
def test_the_plan_holds_every_request_and_no_other_plan_is_cheaper(
    count: int, sizes: list[int]
) -> None:
    plan = plan_chunks(count, sizes)
    assert sum(plan) >= count
    assert all(n in sizes for n in plan)
    assert plan == sorted(plan, reverse=True)
    # No chunk is pure padding, and no single swap of a chunk's size is cheaper.
    assert sum(plan) - min(plan) < count
    for i in range(len(plan)):
        for n in sizes:
            other = [*plan[:i], n, *plan[i + 1 :]]
            if sum(other) >= count:
                assert cost(other) >= cost(plan)


def test_cut_keeps_nonce_order_and_leaves_padding_to_the_last_chunk() -> None:
    requests = list(range(1, 201))
    chunks = cut(requests, plan_chunks(200, [4, 16, 64]))
    assert [len(c) for c in chunks] == [64, 64, 64, 8]
    assert [r for c in chunks for r in c] == requests
    with pytest.raises(ValueError, match="cannot hold"):
        cut(requests, [64])


def test_nothing_to_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to plan"):
        plan_chunks(0, [4])
    with pytest.raises(ValueError, match="no usable"):
        plan_chunks(3, [])


def test_the_full_chunk_rule_takes_whole_chunks_only() -> None:
    assert whole_chunks(list(range(130)), 64) == list(range(128))
    assert whole_chunks(list(range(64)), 64) == list(range(64))
    assert whole_chunks(list(range(63)), 64) == []
    assert plan_chunks(len(whole_chunks(list(range(200)), 64)), [4, 16, 64]) == [64, 64, 64]
