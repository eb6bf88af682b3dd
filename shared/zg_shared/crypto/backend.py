# SPDX-License-Identifier: Apache-2.0
"""Chooses the C route (``_fast``) when it was built, else pure Python with a warning."""

from __future__ import annotations

import logging
import os
import threading
from types import ModuleType

from zg_shared.crypto.poseidon_params import MAX_INPUTS, optimized_params

log = logging.getLogger(__name__)

# Set ZGSERVE_CRYPTO_PURE=1 to force the pure-Python route (debugging, benchmarks).
_FORCE_PURE = os.environ.get("ZGSERVE_CRYPTO_PURE", "") not in ("", "0")


def _import_fast() -> ModuleType | None:
    if _FORCE_PURE:
        log.warning("ZGSERVE_CRYPTO_PURE is set: using pure-Python Poseidon/EdDSA (slow)")
        return None
    try:
        from zg_shared.crypto import _fast
    except ImportError as exc:
        log.warning(
            "zg_shared.crypto._fast is not built (%s): using pure-Python Poseidon/EdDSA, "
            "~1000x slower; run `pip install -e .` with a C compiler present",
            exc,
        )
        return None
    return _fast


fast: ModuleType | None = _import_fast()

_loaded: set[int] = set()
_load_lock = threading.Lock()


def ensure_poseidon_loaded(n_inputs: int) -> None:
    """Hand the C route the optimised constants for this width, once."""
    t = n_inputs + 1
    if t in _loaded or fast is None or not 1 <= n_inputs <= MAX_INPUTS:
        return
    with _load_lock:
        if t in _loaded:
            return
        o = optimized_params(t)
        fast.poseidon_load(
            t,
            o.partial_rounds,
            o.initial,
            [x for row in o.full_constants for x in row],
            o.partial_constants,
            o.last_partial_constants,
            [x for row in o.sparse for x in row],
            [x for row in o.last_partial for x in row],
            [x for row in o.mds for x in row],
        )
        _loaded.add(t)


def implementation() -> str:
    """``"c"`` or ``"python"``: which route the public functions take."""
    return "c" if fast is not None else "python"
