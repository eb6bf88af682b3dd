# SPDX-License-Identifier: Apache-2.0
"""The BN254 scalar field, which is both the circuit's field and BabyJubJub's base field."""

from __future__ import annotations

# r of BN254 (the order of G1); circom's and circomlibjs's default prime.
P = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def check_field_element(value: int, name: str = "value") -> int:
    """Return ``value`` if it is a canonical field element, else raise.

    circomlibjs silently reduces out-of-range inputs modulo P; we refuse them so that
    two different integers never hash or verify alike.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < P:
        raise ValueError(f"{name} must be a field element in [0, P), got {value}")
    return value


def inv(value: int) -> int:
    """Multiplicative inverse modulo P (``value`` must be non-zero mod P)."""
    if value % P == 0:
        raise ZeroDivisionError("inverse of zero in the BN254 scalar field")
    return pow(value, -1, P)


def sqrt(value: int) -> int | None:
    """A square root of ``value`` modulo P, the one <= (P-1)/2, or None if none exists.

    P - 1 = 2^28 * odd, so this is Tonelli-Shanks. Returning the "non-negative" root
    matches ffjavascript's ``F.sqrt``, which circomlibjs's point unpacking relies on.
    """
    value %= P
    if value == 0:
        return 0
    if pow(value, (P - 1) // 2, P) != 1:
        return None
    q, s = P - 1, 0
    while q % 2 == 0:
        q //= 2
        s += 1
    z = 5  # the smallest quadratic non-residue modulo P
    m, c, t, r = s, pow(z, q, P), pow(value, q, P), pow(value, (q + 1) // 2, P)
    while t != 1:
        i, t2 = 0, t
        while t2 != 1:
            t2 = t2 * t2 % P
            i += 1
        b = pow(c, 1 << (m - i - 1), P)
        m, c, t, r = i, b * b % P, t * b * b % P, r * b % P
    return r if r <= (P - 1) // 2 else P - r
