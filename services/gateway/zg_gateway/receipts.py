# SPDX-License-Identifier: Apache-2.0
"""Signing with the receipt key on the request path: each receipt (the same EIP-191 signature
as `zg_shared.receipts.sign_receipt`, byte for byte) and each served event (its attestation,
which billing checks against the service's registered signer)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from zg_shared.eip191 import Eip191Signer
from zg_shared.events import RequestServedV1
from zg_shared.receipts import Receipt


class ReceiptSigner:
    def __init__(self, key: LocalAccount) -> None:
        self._signer = Eip191Signer(bytes(key.key))

    def sign(self, receipt: Receipt) -> str:
        """0x-prefixed r || s || v (v = 27 or 28) over the receipt's digest."""
        return self._signer.sign(receipt.digest())

    def attest(self, event: RequestServedV1) -> RequestServedV1:
        """The event with the gateway's signature: what billing believes served."""
        return event.model_copy(update={"attestation": self._signer.sign(event.digest())})
