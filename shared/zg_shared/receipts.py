# SPDX-License-Identifier: Apache-2.0
"""The provider's signed receipt for one response (docs/protocol.md, section 6).

    digest = keccak(requestHash || sha256(request body) || sha256(response body) || outputFee)

`requestHash` is the request message M (the Poseidon hash the user signed) as 32 bytes
big-endian; `outputFee` is a 32-byte big-endian integer. The provider signs the digest with
EIP-191 (`personal_sign`) using the service's registered `signerAddress` key; the SDK
recovers the signer and compares.
"""

from __future__ import annotations

import hashlib

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict

from zg_shared.chain.types import Address, checksum


class Receipt(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_hash: int
    request_body_sha256: str
    response_body_sha256: str
    output_fee: int

    @classmethod
    def for_bodies(
        cls, request_hash: int, request_body: bytes, response_body: bytes, output_fee: int
    ) -> Receipt:
        return cls(
            request_hash=request_hash,
            request_body_sha256=hashlib.sha256(request_body).hexdigest(),
            response_body_sha256=hashlib.sha256(response_body).hexdigest(),
            output_fee=output_fee,
        )

    def digest(self) -> bytes:
        return keccak(
            self.request_hash.to_bytes(32, "big")
            + bytes.fromhex(self.request_body_sha256)
            + bytes.fromhex(self.response_body_sha256)
            + self.output_fee.to_bytes(32, "big")
        )


def sign_receipt(receipt: Receipt, key: LocalAccount) -> str:
    """0x-prefixed 65-byte EIP-191 signature over the receipt's digest."""
    signed = key.sign_message(encode_defunct(primitive=receipt.digest()))
    return "0x" + bytes(signed.signature).hex()


def receipt_signer(receipt: Receipt, signature: str) -> Address:
    """The address that signed the receipt; any malformed signature raises ValueError."""
    try:
        recovered = Account.recover_message(
            encode_defunct(primitive=receipt.digest()),
            signature=bytes.fromhex(signature.removeprefix("0x")),
        )
    except Exception as exc:  # eth-keys raises several types for malformed signatures
        raise ValueError(f"not a valid receipt signature: {exc}") from exc
    return checksum(recovered)
