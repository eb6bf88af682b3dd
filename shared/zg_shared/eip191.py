# SPDX-License-Identifier: Apache-2.0
"""EIP-191 (`personal_sign`) signatures over 32-byte digests, on the hot path: the same bytes
as eth-account's `sign_message(encode_defunct(primitive=digest))`, without its per-call key
parsing and public-key derivation (libsecp256k1 through coincurve)."""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey
from eth_utils.crypto import keccak

from zg_shared.chain.types import Address, checksum

# EIP-191 version 0x45 ("personal_sign") for a 32-byte message.
_PREFIX = b"\x19Ethereum Signed Message:\n32"


class Eip191Signer:
    def __init__(self, private_key: bytes) -> None:
        self._key = PrivateKey(private_key)

    def sign(self, digest: bytes) -> str:
        """0x-prefixed r || s || v (v = 27 or 28) over `digest`."""
        signed = self._key.sign_recoverable(keccak(_PREFIX + digest), hasher=None)
        return "0x" + signed[:64].hex() + format(signed[64] + 27, "02x")


def signer_of(digest: bytes, signature: str) -> Address | None:
    """The address whose key signed `digest`, or None for a malformed signature."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65 or raw[64] not in (27, 28):
            return None
        recoverable = raw[:64] + bytes([raw[64] - 27])
        public = PublicKey.from_signature_and_message(
            recoverable, keccak(_PREFIX + digest), hasher=None
        )
    except ValueError:
        return None
    return checksum("0x" + keccak(public.format(compressed=False)[1:])[-20:].hex())
