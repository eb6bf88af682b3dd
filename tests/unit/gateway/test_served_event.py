# SPDX-License-Identifier: Apache-2.0
"""The served event the gateway builds without validation equals the validated one, and its
attestation (the receipt key's signature, which billing checks) covers every field."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account as EthAccount
from eth_account.messages import encode_defunct

from zg_gateway.receipts import ReceiptSigner
from zg_gateway.service import served_event
from zg_shared.eip191 import signer_of
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
    "signer": (2**254 - 1, 7),
}


@pytest.mark.parametrize("outcome", ["charged", "voided"])
def test_the_unvalidated_event_equals_the_validated_one(outcome: str) -> None:
    fields = {**FIELDS, "outcome": outcome}
    built = served_event(**fields)
    validated = RequestServedV1.model_validate({**fields, "occurred_at": built.occurred_at})
    assert built == validated
    assert built.model_dump_json() == validated.model_dump_json()
    assert RequestServedV1.model_validate_json(built.model_dump_json()) == validated


KEY = EthAccount.from_key("0x" + "11" * 32)


def test_the_attestation_survives_the_bus_and_names_the_receipt_key() -> None:
    signed = ReceiptSigner(KEY).attest(served_event(**FIELDS))
    received = RequestServedV1.model_validate_json(signed.model_dump_json())
    assert signer_of(received.digest(), received.attestation) == KEY.address
    # The same EIP-191 signature eth-account makes.
    reference = KEY.sign_message(encode_defunct(primitive=received.digest()))
    assert received.attestation == "0x" + bytes(reference.signature).hex()


@pytest.mark.parametrize(
    "change",
    [
        {"nonce": 2**64 - 2},
        {"outcome": "voided"},
        {"fee": 1},
        {"previous_output_fee": 0},
        {"output_fee": 321},
        {"user": "0x90F79bf6EB2c4f870365E785982E1f101E93b906"},
        {"event_id": "another"},
        {"service": "embed"},
        {"signature": "0x" + "cd" * 96},
        {"streamed": False},
    ],
)
def test_any_change_to_a_signed_event_breaks_its_attestation(change: dict[str, Any]) -> None:
    signed = ReceiptSigner(KEY).attest(served_event(**FIELDS))
    forged = RequestServedV1.model_validate({**signed.model_dump(), **change})
    assert signer_of(forged.digest(), forged.attestation) != KEY.address


@pytest.mark.parametrize("attestation", ["", "0x", "0x" + "00" * 65, "zz", "0x" + "ab" * 64])
def test_a_malformed_attestation_names_no_signer(attestation: str) -> None:
    event = served_event(**FIELDS)
    assert signer_of(event.digest(), attestation) is None
