# SPDX-License-Identifier: Apache-2.0
"""The signed request message M = Poseidon(user, provider, nonce, fee)
(docs/protocol.md, section 4)."""

from __future__ import annotations

import re
from functools import lru_cache

from eth_utils.address import is_checksum_address

from zg_shared.crypto import eddsa
from zg_shared.crypto.keys import PublicKey, Signature
from zg_shared.crypto.poseidon import poseidon

NONCE_LIMIT = 1 << 64
FEE_LIMIT = 1 << 128
_ADDRESS_LIMIT = 1 << 160
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")

Address = str | int


def address_to_field(address: Address, name: str = "address") -> int:
    """An Ethereum address as a field element (its 160-bit integer value).

    Accepts ``0x`` + 40 hex digits (a mixed-case address must carry a valid EIP-55
    checksum) or an int below 2^160.
    """
    if isinstance(address, bool):
        raise TypeError(f"{name} must be a hex string or an int")
    if isinstance(address, int):
        if not 0 <= address < _ADDRESS_LIMIT:
            raise ValueError(f"{name} must be below 2^160, got {address}")
        return address
    if not isinstance(address, str):
        raise TypeError(f"{name} must be a hex string or an int")
    value = _parse_address(address)
    if value is None:
        raise ValueError(
            f"{name} must be 0x + 40 hex digits with a valid EIP-55 checksum "
            f"when mixed-case, got {address!r}"
        )
    return value


@lru_cache(maxsize=8192)
def _parse_address(address: str) -> int | None:
    # Cached: the checksum costs a Keccak (~30 us), and the same addresses recur.
    if not _ADDRESS_RE.fullmatch(address):
        return None
    digits = address[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(address):
        return None
    return int(digits, 16)


def _check_uint(value: int, limit: int, name: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if not 0 <= value < limit:
        raise ValueError(f"{name} must be in [0, 2^{bits}), got {value}")
    return value


def request_message(user: Address, provider: Address, nonce: int, fee: int) -> int:
    """M = Poseidon(user, provider, nonce, fee); nonce is a u64, fee below 2^128."""
    return poseidon(
        (
            address_to_field(user, "user"),
            address_to_field(provider, "provider"),
            _check_uint(nonce, NONCE_LIMIT, "nonce", 64),
            _check_uint(fee, FEE_LIMIT, "fee", 128),
        )
    )


def sign_request(prv: bytes, user: Address, provider: Address, nonce: int, fee: int) -> Signature:
    return eddsa.sign_poseidon(prv, request_message(user, provider, nonce, fee))


def verify_request(
    user: Address, provider: Address, nonce: int, fee: int, sig: Signature, pub: PublicKey
) -> bool:
    """Verify a request signature; raises ValueError/TypeError for malformed fields."""
    return eddsa.verify_poseidon(request_message(user, provider, nonce, fee), sig, pub)
