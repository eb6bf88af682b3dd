# SPDX-License-Identifier: Apache-2.0
"""A FeesSettled whose amount differs from the book's is an error line, unless it is a later
chunk's event confirming the earlier planned chunks of the same settlement too."""

from __future__ import annotations

import logging

import pytest

from zg_billing.records import ChunkRange, SettlementRecord, UserPart
from zg_billing.settler import _log_fee_difference
from zg_shared.chain.events import LogPosition
from zg_shared.events import FeesSettledV1

USER = "0x" + "11" * 20
PROVIDER = "0x" + "22" * 20


def _record(*chunks: tuple[int, int, int]) -> SettlementRecord:
    planned = tuple(
        ChunkRange(user=USER, init_nonce=i, final_nonce=f, total_fee=fee, request_count=f - i + 1)
        for i, f, fee in chunks
    )
    return SettlementRecord(
        id="s1",
        provider=PROVIDER,
        created_ms=0,
        oldest_served_ms=0,
        parts=(UserPart(user=USER, requests=()),),
        planned=planned,
    )


def _event(final_nonce: int, amount: int) -> FeesSettledV1:
    position = LogPosition(
        block_number=7, block_hash="0x" + "aa" * 32, transaction_hash="0x" + "bb" * 32, log_index=0
    )
    return FeesSettledV1(
        position=position, user=USER, provider=PROVIDER, amount=amount, final_nonce=final_nonce
    )


# Chunks 1-4 (40 wei), 5-8 (50), 9-12 (60) of one settlement.
PLANNED = ((1, 4, 40), (5, 8, 50), (9, 12, 60))


@pytest.mark.parametrize(
    ("final_nonce", "amount", "book_fee", "level"),
    [
        (12, 60, 150, logging.INFO),  # the last chunk's event first: all three confirmed with it
        (12, 60, 110, logging.INFO),  # the first chunk's came already: the other two
        (8, 50, 90, logging.INFO),  # the middle one first
        (12, 60, 170, logging.ERROR),  # 20 wei the plan does not explain
        (12, 70, 150, logging.ERROR),  # the event paid other than its chunk's fee
        (10, 60, 150, logging.ERROR),  # no planned chunk ends there
    ],
)
def test_only_the_planned_run_of_chunks_is_no_error(
    final_nonce: int, amount: int, book_fee: int, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zg_billing.settler")
    _log_fee_difference(_event(final_nonce, amount), book_fee, [_record(*PLANNED)])
    [line] = [r for r in caplog.records if r.name == "zg_billing.settler"]
    assert line.levelno == level


def test_without_an_open_settlement_any_difference_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _log_fee_difference(_event(12, 60), 150, [])
    assert [r.levelno for r in caplog.records if r.name == "zg_billing.settler"] == [logging.ERROR]
