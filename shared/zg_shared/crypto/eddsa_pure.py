# SPDX-License-Identifier: Apache-2.0
"""EdDSA-Poseidon over BabyJubJub in pure Python, step for step as circomlibjs ``Eddsa``.

The reference the C route is tested against, and the fallback when it is missing.
"""

from __future__ import annotations

from zg_shared.crypto import babyjubjub as bj
from zg_shared.crypto.blake512 import blake512
from zg_shared.crypto.field import P, check_field_element
from zg_shared.crypto.poseidon_pure import poseidon_optimized

PRIVATE_KEY_BYTES = 32


def check_private_key(prv: bytes) -> bytes:
    if not isinstance(prv, bytes | bytearray | memoryview):
        raise TypeError("private key must be bytes")
    prv = bytes(prv)
    if len(prv) != PRIVATE_KEY_BYTES:
        raise ValueError(f"private key must be {PRIVATE_KEY_BYTES} bytes, got {len(prv)}")
    return prv


def expand_private_key(prv: bytes, digest: bytes | None = None) -> tuple[int, bytes]:
    """(s, nonce prefix): the pruned scalar from BLAKE-512(prv) and the digest's upper half.

    ``digest`` lets the fast route pass a BLAKE-512 it computed in C.
    """
    h = bytearray(digest if digest is not None else blake512(check_private_key(prv)))
    # circomlibjs pruneBuffer: clear the 3 low bits (a multiple of the cofactor), clear
    # bit 255 and set bit 254.
    h[0] &= 0xF8
    h[31] = (h[31] & 0x7F) | 0x40
    return int.from_bytes(h[:32], "little"), bytes(h[32:])


def prv2pub(prv: bytes) -> bj.Point:
    """circomlibjs ``prv2pub``: A = (s >> 3) * Base8."""
    s, _ = expand_private_key(prv)
    return bj.mul(bj.BASE8, s >> 3)


def nonce(prefix: bytes, msg: int, digest: bytes | None = None) -> int:
    """r = BLAKE-512(prefix || msg as 32 LE bytes) mod l (deterministic, as circomlibjs)."""
    data = prefix + msg.to_bytes(32, "little")
    if digest is None:
        digest = blake512(data)
    return int.from_bytes(digest, "little") % bj.SUBORDER


def sign(prv: bytes, msg: int) -> tuple[int, int, int]:
    """circomlibjs ``signPoseidon``: returns (R8x, R8y, S)."""
    check_field_element(msg, "msg")
    s, prefix = expand_private_key(prv)
    ax, ay = bj.mul(bj.BASE8, s >> 3)
    r = nonce(prefix, msg)
    r8x, r8y = bj.mul(bj.BASE8, r)
    hm = poseidon_optimized([r8x, r8y, ax, ay, msg])
    return r8x, r8y, (r + hm * s) % bj.SUBORDER


def public_key_acceptable(ax: int, ay: int) -> bool:
    """On the curve, canonical, and not of small order (8A != identity).

    circomlibjs only checks the curve equation; circomlib's verifier circuit also
    refuses a small-order A (for which anyone could forge), and so do we.
    """
    if not bj.is_on_curve((ax, ay)):
        return False
    a8 = bj.mul((ax, ay), 8)
    return a8[0] != 0


def verify(msg: int, r8x: int, r8y: int, s: int, ax: int, ay: int) -> bool:
    """circomlibjs ``verifyPoseidon``, plus the circuit's small-order-key rule."""
    check_field_element(msg, "msg")
    if not (isinstance(s, int) and 0 <= s < bj.SUBORDER):
        return False
    if not all(isinstance(v, int) and 0 <= v < P for v in (r8x, r8y, ax, ay)):
        return False
    if not bj.is_on_curve((r8x, r8y)) or not public_key_acceptable(ax, ay):
        return False
    hm = poseidon_optimized([r8x, r8y, ax, ay, msg])
    left = bj.mul(bj.BASE8, s)
    right = bj.add((r8x, r8y), bj.mul((ax, ay), 8 * hm))
    return left == right
