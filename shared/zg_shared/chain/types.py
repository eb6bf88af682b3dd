"""Pydantic field types for chain values: checksummed addresses, 32-byte hashes, wei."""

from __future__ import annotations

from typing import Annotated

from eth_utils import is_address, to_checksum_address
from pydantic import AfterValidator, BeforeValidator, Field


def _checksum(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"not an Ethereum address: {value!r}")
    return str(to_checksum_address(value))


def _hex32(value: object) -> str:
    raw = bytes(value) if isinstance(value, bytes | bytearray) else None
    text = "0x" + raw.hex() if raw is not None else str(value)
    if not text.startswith("0x"):
        text = "0x" + text
    if len(text) != 66:
        raise ValueError(f"not a 32-byte hex value: {value!r}")
    return text.lower()


Address = Annotated[str, AfterValidator(_checksum)]
"""An Ethereum address, stored in its EIP-55 checksummed form."""

Hash32 = Annotated[str, BeforeValidator(_hex32)]
"""A 32-byte hash (tx or block) as 0x-prefixed lowercase hex."""

Wei = Annotated[int, Field(ge=0)]
"""An amount in wei: never a float, never negative."""

Uint256 = Annotated[int, Field(ge=0, lt=2**256)]
