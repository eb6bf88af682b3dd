# SPDX-License-Identifier: Apache-2.0
"""BabyJubJub in pure Python, as circomlibjs ``babyJub``: the oracle for the C extension.

Twisted Edwards curve a*x^2 + y^2 = 1 + d*x^2*y^2 over the BN254 scalar field. Points
are affine ``(x, y)`` tuples; the identity is (0, 1).
"""

from __future__ import annotations

from zg_shared.crypto.field import P, inv, sqrt

A = 168700
D = 168696
# Order of the whole curve, and of the prime subgroup that Base8 generates (cofactor 8).
ORDER = 21888242871839275222246405745257275088614511777268538073601725287587578984328
SUBORDER = ORDER >> 3
GENERATOR = (
    995203441582195749578291179787384436505546430278305826713579947235728471134,
    5472060717959818805561601436314318772137091100104008585924551046643952123905,
)
BASE8 = (
    5299619240641551281634865583518297030282874472190772894086521144482721001553,
    16950150798460657717958625567821834550301663161624707787222815936182638968203,
)
IDENTITY = (0, 1)
_HALF = (P - 1) // 2

Point = tuple[int, int]


def is_on_curve(point: Point) -> bool:
    """True if ``point`` has canonical coordinates and satisfies the curve equation."""
    x, y = point
    if not (0 <= x < P and 0 <= y < P):
        return False
    x2, y2 = x * x % P, y * y % P
    return (A * x2 + y2 - 1 - D * x2 * y2) % P == 0


def add(p1: Point, p2: Point) -> Point:
    """Point addition (complete on this curve: it also doubles)."""
    x1, y1 = p1
    x2, y2 = p2
    beta, gamma = x1 * y2 % P, y1 * x2 % P
    dtau = D * beta * gamma % P
    x3 = (beta + gamma) * inv(1 + dtau) % P
    y3 = (y1 * y2 - A * x1 * x2) * inv(1 - dtau) % P
    return x3, y3


def double(point: Point) -> Point:
    return add(point, point)


def negate(point: Point) -> Point:
    return (-point[0]) % P, point[1]


def mul(point: Point, scalar: int) -> Point:
    """``scalar * point`` by double-and-add, in projective coordinates with one inversion.

    Not constant-time: the branch pattern follows the scalar's bits (see docs/signatures.md).
    """
    if scalar < 0:
        raise ValueError("scalar must be non-negative")
    # Projective (X : Y : Z) with x = X/Z, y = Y/Z ("add-2008-bbjlp" / "dbl-2008-bbjlp").
    rx, ry, rz = 0, 1, 1
    bx, by, bz = point[0], point[1], 1
    while scalar:
        if scalar & 1:
            rx, ry, rz = _proj_add(rx, ry, rz, bx, by, bz)
        bx, by, bz = _proj_add(bx, by, bz, bx, by, bz)
        scalar >>= 1
    zi = inv(rz)
    return rx * zi % P, ry * zi % P


def _proj_add(x1: int, y1: int, z1: int, x2: int, y2: int, z2: int) -> tuple[int, int, int]:
    a = z1 * z2 % P
    b = a * a % P
    c = x1 * x2 % P
    d = y1 * y2 % P
    e = D * c * d % P
    f = (b - e) % P
    g = (b + e) % P
    x3 = a * f * ((x1 + y1) * (x2 + y2) - c - d) % P
    y3 = a * g * (d - A * c) % P
    z3 = f * g % P
    return x3, y3, z3


def in_subgroup(point: Point) -> bool:
    """On the curve and of order dividing the prime ``SUBORDER``."""
    return is_on_curve(point) and mul(point, SUBORDER) == IDENTITY


def pack_point(point: Point) -> bytes:
    """circomlibjs ``packPoint``: y little-endian, top bit set when x > (P-1)/2."""
    x, y = point
    out = bytearray(y.to_bytes(32, "little"))
    if x > _HALF:
        out[31] |= 0x80
    return bytes(out)


def unpack_point(data: bytes) -> Point:
    """Inverse of ``pack_point`` (circomlibjs ``unpackPoint``); raises ValueError if invalid.

    Stricter than circomlibjs in one place: a y >= P is refused (circomlibjs lets y == P
    through and reduces it).
    """
    if len(data) != 32:
        raise ValueError(f"a packed point is 32 bytes, got {len(data)}")
    raw = bytearray(data)
    sign = bool(raw[31] & 0x80)
    raw[31] &= 0x7F
    y = int.from_bytes(raw, "little")
    if y >= P:
        raise ValueError("packed point: y is not a field element")
    y2 = y * y % P
    denom = (A - D * y2) % P
    if denom == 0:
        raise ValueError("packed point: no x for this y")
    x2 = (1 - y2) * inv(denom) % P
    # Like circomlibjs, require x^2 to be a non-zero square: (0, +-1) do not unpack.
    if pow(x2, _HALF, P) != 1:
        raise ValueError("packed point: not on the curve")
    x = sqrt(x2)
    assert x is not None
    if sign:
        x = (-x) % P
    return x, y
