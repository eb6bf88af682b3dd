# SPDX-License-Identifier: Apache-2.0
"""The gateway's fast receipt signer gives the same bytes as the shared reference signer."""

from __future__ import annotations

import hashlib

from eth_account import Account as EthAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from zg_gateway.receipts import ReceiptSigner
from zg_shared.receipts import Receipt, receipt_signer, sign_receipt

KEY = EthAccount.from_key("0x" + "4b" * 32)
SIGNER = ReceiptSigner(KEY)


@settings(max_examples=200, deadline=None)
@given(
    request_hash=st.integers(min_value=0, max_value=(1 << 254) - 1),
    request_body=st.binary(max_size=64),
    response_body=st.binary(max_size=64),
    output_fee=st.integers(min_value=0, max_value=(1 << 128) - 1),
)
def test_the_fast_signer_matches_the_reference_signer(
    request_hash: int, request_body: bytes, response_body: bytes, output_fee: int
) -> None:
    receipt = Receipt(
        request_hash=request_hash,
        request_body_sha256=hashlib.sha256(request_body).hexdigest(),
        response_body_sha256=hashlib.sha256(response_body).hexdigest(),
        output_fee=output_fee,
    )
    signature = SIGNER.sign(receipt)
    assert signature == sign_receipt(receipt, KEY)
    assert receipt_signer(receipt, signature) == KEY.address
