# SPDX-License-Identifier: Apache-2.0
"""The counting rule and the provider's receipt signatures."""

from __future__ import annotations

import pytest
from eth_account import Account

from zg_shared.metering import MeteringError, count_input_units
from zg_shared.receipts import Receipt, receipt_signer, sign_receipt

KEY = Account.from_key("0x" + "42" * 32)


def test_chat_counts_words_of_every_text_content() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be  brief\n"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "two words"}, {"type": "image_url"}],
            },
            {"role": "assistant", "content": None},
        ]
    }
    assert count_input_units("chat/completions", body) == 4


@pytest.mark.parametrize(
    ("endpoint", "body", "units"),
    [
        ("completions", {"prompt": "one two three"}, 3),
        ("completions", {"prompt": ["a b", "c"]}, 3),
        ("embeddings", {"input": "x y"}, 2),
        ("embeddings", {"input": ["", "   "]}, 0),
    ],
)
def test_prompts_and_inputs(endpoint: str, body: dict[str, object], units: int) -> None:
    assert count_input_units(endpoint, body) == units


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("chat/completions", {}),
        ("chat/completions", {"messages": []}),
        ("chat/completions", {"messages": ["hi"]}),
        ("chat/completions", {"messages": [{"content": 5}]}),
        ("completions", {"prompt": 3}),
        ("embeddings", {"input": [1, 2]}),
        ("images", {"prompt": "x"}),
    ],
)
def test_malformed_bodies_are_named(endpoint: str, body: dict[str, object]) -> None:
    with pytest.raises(MeteringError):
        count_input_units(endpoint, body)


def receipt(output_fee: int = 12) -> Receipt:
    return Receipt.for_bodies(2**250 + 5, b'{"a":1}', b'{"b":2}', output_fee)


def test_a_signed_receipt_recovers_to_its_signer() -> None:
    assert receipt_signer(receipt(), sign_receipt(receipt(), KEY)) == KEY.address


def test_any_changed_field_recovers_to_someone_else() -> None:
    signature = sign_receipt(receipt(), KEY)
    for changed in (
        receipt(output_fee=13),
        receipt().model_copy(update={"request_hash": 1}),
        receipt().model_copy(update={"response_body_sha256": "00" * 32}),
    ):
        assert receipt_signer(changed, signature) != KEY.address


def test_a_malformed_signature_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a valid receipt signature"):
        receipt_signer(receipt(), "0x1234")
