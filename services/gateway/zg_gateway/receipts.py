# SPDX-License-Identifier: Apache-2.0
"""Receipt signing on the request path: the same EIP-191 signature as
`zg_shared.receipts.sign_receipt`, byte for byte, without eth-account's per-call key parsing
and public-key derivation (a third of the cost of a signature there)."""

from __future__ import annotations

from coincurve import PrivateKey
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from zg_shared.receipts import Receipt

# EIP-191 version 0x45 ("personal_sign") for a 32-byte message.
_PREFIX = b"\x19Ethereum Signed Message:\n32"


class ReceiptSigner:
    def __init__(self, key: LocalAccount) -> None:
        self._key = PrivateKey(bytes(key.key))

    def sign(self, receipt: Receipt) -> str:
        """0x-prefixed r || s || v (v = 27 or 28) over the receipt's digest."""
        signed = self._key.sign_recoverable(keccak(_PREFIX + receipt.digest()), hasher=None)
        return "0x" + signed[:64].hex() + format(signed[64] + 27, "02x")
