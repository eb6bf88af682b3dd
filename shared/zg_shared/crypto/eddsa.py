# SPDX-License-Identifier: Apache-2.0
"""EdDSA-Poseidon on BabyJubJub, byte for byte as circomlibjs ``signPoseidon``/``verifyPoseidon``.

Takes the C route when it is built (see ``backend``), else the pure-Python reference.
Verification keeps a bounded LRU cache of per-public-key tables, because one user
signs many requests.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import TYPE_CHECKING

from zg_shared.crypto import babyjubjub as bj
from zg_shared.crypto import backend, eddsa_pure
from zg_shared.crypto.field import check_field_element
from zg_shared.crypto.keys import PublicKey, Signature

if TYPE_CHECKING:
    from zg_shared.crypto._fast import KeyTable

# Each cached key table holds 512 precomputed points (~48 KiB).
KEY_CACHE_SIZE = 1024


def generate_private_key() -> bytes:
    """A fresh random 32-byte private key (circomlibjs takes any bytes; we fix 32)."""
    return secrets.token_bytes(eddsa_pure.PRIVATE_KEY_BYTES)


def prv2pub(prv: bytes) -> PublicKey:
    """The public key of ``prv``, as circomlibjs ``prv2pub``."""
    fast = backend.fast
    if fast is None:
        return PublicKey(*eddsa_pure.prv2pub(prv))
    s, _ = eddsa_pure.expand_private_key(prv, fast.blake512(eddsa_pure.check_private_key(prv)))
    return PublicKey(*fast.base8_mul(s >> 3))


def sign_poseidon(prv: bytes, msg: int) -> Signature:
    """Sign the field element ``msg``; deterministic, equal to circomlibjs's signature.

    Not constant-time in either route (see docs/signatures.md).
    """
    fast = backend.fast
    if fast is None:
        return Signature(*eddsa_pure.sign(prv, msg))
    check_field_element(msg, "msg")
    s, prefix = eddsa_pure.expand_private_key(prv, fast.blake512(eddsa_pure.check_private_key(prv)))
    ax, ay = fast.base8_mul(s >> 3)
    r = eddsa_pure.nonce(prefix, msg, fast.blake512(prefix + msg.to_bytes(32, "little")))
    r8x, r8y = fast.base8_mul(r)
    backend.ensure_poseidon_loaded(5)
    hm: int = fast.poseidon((r8x, r8y, ax, ay, msg))
    return Signature(r8x, r8y, (r + hm * s) % bj.SUBORDER)


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _key_table(ax: int, ay: int) -> KeyTable | None:
    """The C route's table for a key, or None if the key is unacceptable."""
    assert backend.fast is not None
    try:
        table: KeyTable = backend.fast.KeyTable(ax, ay)
    except (ValueError, TypeError):
        return None
    return table


def clear_key_cache() -> None:
    _key_table.cache_clear()


def verify_poseidon(msg: int, sig: Signature, pub: PublicKey) -> bool:
    """True iff ``sig`` is circomlibjs-valid for ``msg`` under ``pub``.

    Rejects (returns False): S >= subgroup order, R8 or A off the curve or with a
    coordinate >= P, and (as circomlib's verifier circuit, beyond circomlibjs) a public
    key of small order. ``msg`` itself must be a field element (ValueError otherwise).
    """
    fast = backend.fast
    if fast is None:
        return eddsa_pure.verify(msg, sig.r8x, sig.r8y, sig.s, pub.x, pub.y)
    table = _key_table(pub.x, pub.y)
    if table is None:
        check_field_element(msg, "msg")
        return False
    backend.ensure_poseidon_loaded(5)
    ok: bool = fast.verify(msg, sig.r8x, sig.r8y, sig.s, table)
    return ok
