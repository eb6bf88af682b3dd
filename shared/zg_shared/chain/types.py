# SPDX-License-Identifier: Apache-2.0
"""Pydantic field types for chain values: checksummed addresses, 32-byte hashes, wei."""

from __future__ import annotations

import functools
from typing import Annotated, Any, TypeAlias

from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from pydantic import AfterValidator, BeforeValidator, Field
from web3 import AsyncWeb3

Web3Client: TypeAlias = AsyncWeb3[Any]
"""An async web3 connection over any provider."""


@functools.lru_cache(maxsize=65536)
def checksum(value: str) -> ChecksumAddress:
    """`value` in EIP-55 form; ValueError if it is not an address at all. Cached: the same
    few addresses are checked on every request and event (keccak per call otherwise)."""
    if not is_address(value):
        raise ValueError(f"not an Ethereum address: {value!r}")
    return to_checksum_address(value)


def hex32(value: object) -> str:
    """A 32-byte hash given as bytes or text, as 0x-prefixed lowercase hex."""
    raw = bytes(value) if isinstance(value, bytes | bytearray) else None
    text = "0x" + raw.hex() if raw is not None else str(value)
    if not text.startswith("0x"):
        text = "0x" + text
    if len(text) != 66:
        raise ValueError(f"not a 32-byte hex value: {value!r}")
    return text.lower()


Address = Annotated[ChecksumAddress, AfterValidator(checksum)]
"""An Ethereum address, stored in its EIP-55 checksummed form."""

Hash32 = Annotated[str, BeforeValidator(hex32)]
"""A 32-byte hash (tx or block) as 0x-prefixed lowercase hex."""

Wei = Annotated[int, Field(ge=0)]
"""An amount in wei: never a float, never negative."""

Uint256 = Annotated[int, Field(ge=0, lt=2**256)]
