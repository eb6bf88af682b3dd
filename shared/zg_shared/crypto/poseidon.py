# SPDX-License-Identifier: Apache-2.0
"""Poseidon hash compatible with circomlibjs ``buildPoseidon`` and circomlib ``Poseidon(n)``."""

from __future__ import annotations

from collections.abc import Sequence

from zg_shared.crypto import backend
from zg_shared.crypto.poseidon_pure import poseidon_optimized


def poseidon(inputs: Sequence[int]) -> int:
    """Poseidon of 1..16 field elements (ints in [0, P)); raises ValueError otherwise.

    Unlike circomlibjs, out-of-range inputs are refused rather than reduced modulo P.
    """
    fast = backend.fast
    if fast is None:
        return poseidon_optimized(inputs)
    # The C route validates the inputs itself (count, int type, range).
    backend.ensure_poseidon_loaded(len(inputs))
    result: int = fast.poseidon(inputs)
    return result
