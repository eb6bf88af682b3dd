# SPDX-License-Identifier: Apache-2.0
"""The served event the gateway builds without validation equals the validated one."""

from __future__ import annotations

from typing import Any

import pytest

from zg_gateway.service import served_event
from zg_shared.events import RequestServedV1

FIELDS: dict[str, Any] = {
    "event_id": "4f2a0c1e9b7d4e0a8c3b2a1f0e9d8c7b",
    "service": "chat",
    "user": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "provider": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "nonce": 2**64 - 1,
    "fee": 2**128 - 1,
    "input_fee": 2**127,
    "previous_output_fee": 2**127 - 1,
    "signature": "0x" + "ab" * 96,
    "input_units": 4,
    "output_units": 16,
    "output_fee": 320,
    "outcome": "charged",
    "reason": "completed",
    "streamed": True,
}


@pytest.mark.parametrize("outcome", ["charged", "voided"])
def test_the_unvalidated_event_equals_the_validated_one(outcome: str) -> None:
    fields = {**FIELDS, "outcome": outcome}
    built = served_event(**fields)
    validated = RequestServedV1.model_validate({**fields, "occurred_at": built.occurred_at})
    assert built == validated
    assert built.model_dump_json() == validated.model_dump_json()
    assert RequestServedV1.model_validate_json(built.model_dump_json()) == validated
