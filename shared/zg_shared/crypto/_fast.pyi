# SPDX-License-Identifier: Apache-2.0
"""Type stub for the C extension built from _fast.c."""

from collections.abc import Sequence

class KeyTable:
    """A validated public key (on the curve, not of small order) with its window table."""

    def __new__(cls, ax: int, ay: int) -> KeyTable: ...
    @property
    def ax(self) -> int: ...
    @property
    def ay(self) -> int: ...

def poseidon_load(
    t: int,
    rp: int,
    initial: Sequence[int],
    full_c: Sequence[int],
    partial_c: Sequence[int],
    last_c: Sequence[int],
    sparse: Sequence[int],
    last_m: Sequence[int],
    mds: Sequence[int],
) -> None: ...
def poseidon(inputs: Sequence[int]) -> int: ...
def base8_mul(k: int) -> tuple[int, int]: ...
def verify(msg: int, r8x: int, r8y: int, s: int, key: KeyTable) -> bool: ...
def blake512(data: bytes | bytearray | memoryview) -> bytes: ...
def use_asm(flag: bool | None = None) -> bool: ...
