# SPDX-License-Identifier: Apache-2.0
"""Wire formats for BabyJubJub public keys and EdDSA-Poseidon signatures
(docs/protocol.md, section 4)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from zg_shared.crypto import babyjubjub as bj

_WORD = 32
_U256 = 1 << 256


def _check_word(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if not 0 <= value < _U256:
        raise ValueError(f"{name} must fit in 32 unsigned bytes")


def parse_hex(text: str, n_bytes: int, what: str) -> bytes:
    """Strict ``0x``-prefixed hex of exactly ``n_bytes`` bytes (either case)."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a hex string")
    if not re.fullmatch(rf"0x[0-9a-fA-F]{{{2 * n_bytes}}}", text):
        raise ValueError(f"{what} must be 0x followed by {2 * n_bytes} hex digits")
    return bytes.fromhex(text[2:])


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A BabyJubJub public key A = (x, y), as registered on chain (``signer``)."""

    x: int
    y: int

    def __post_init__(self) -> None:
        _check_word(self.x, "x")
        _check_word(self.y, "y")

    def to_bytes(self) -> bytes:
        """64 bytes: x then y, each 32 bytes big-endian."""
        return self.x.to_bytes(_WORD, "big") + self.y.to_bytes(_WORD, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        if len(data) != 2 * _WORD:
            raise ValueError(f"a public key is {2 * _WORD} bytes, got {len(data)}")
        return cls(int.from_bytes(data[:_WORD], "big"), int.from_bytes(data[_WORD:], "big"))

    def to_hex(self) -> str:
        return "0x" + self.to_bytes().hex()

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        return cls.from_bytes(parse_hex(text, 2 * _WORD, "public key"))

    def pack(self) -> bytes:
        """circomlibjs ``packPoint``: 32 bytes."""
        return bj.pack_point((self.x, self.y))

    @classmethod
    def unpack(cls, data: bytes) -> PublicKey:
        x, y = bj.unpack_point(data)
        return cls(x, y)

    def as_tuple(self) -> tuple[int, int]:
        return self.x, self.y


@dataclass(frozen=True, slots=True)
class Signature:
    """An EdDSA-Poseidon signature (R8, S). Validity is checked by verification, not here."""

    r8x: int
    r8y: int
    s: int

    def __post_init__(self) -> None:
        _check_word(self.r8x, "r8x")
        _check_word(self.r8y, "r8y")
        _check_word(self.s, "s")

    def to_bytes(self) -> bytes:
        """96 bytes: R8x, R8y, S, each 32 bytes big-endian (docs/protocol.md, sec. 4)."""
        return b"".join(v.to_bytes(_WORD, "big") for v in (self.r8x, self.r8y, self.s))

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        if len(data) != 3 * _WORD:
            raise ValueError(f"a signature is {3 * _WORD} bytes, got {len(data)}")
        words = [int.from_bytes(data[i : i + _WORD], "big") for i in range(0, 3 * _WORD, _WORD)]
        return cls(*words)

    def to_hex(self) -> str:
        return "0x" + self.to_bytes().hex()

    @classmethod
    def from_hex(cls, text: str) -> Signature:
        return cls.from_bytes(parse_hex(text, 3 * _WORD, "signature"))
