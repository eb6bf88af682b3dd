# SPDX-License-Identifier: Apache-2.0
"""How deep a JSON text nests, measured before it is parsed.

CPython's `json.loads` recurses on the C stack, and a library every zgserve process imports
(py_ecc) raises the recursion limit to 100,000, so some 100,000 nested brackets crash the
whole process (a segfault, not a RecursionError). The gateway measures request bodies, the SDK
providers' replies, in C-speed passes over the bytes.
"""

from __future__ import annotations

from itertools import accumulate

_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(c for c in range(256) if c not in _BRACKETS)
_STEP = tuple(1 if c in b"[{" else -1 if c in b"]}" else 0 for c in range(256))


def too_deep(raw: bytes, limit: int) -> bool:
    """Brackets outside strings nest deeper than `limit` (measured generously on a malformed
    text: an unclosed bracket counts)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # cannot nest deeper than it has brackets: the usual case, two passes
    # Escapes first (a backslash escapes the one character after it), then the quotes that
    # remain split strings from the rest: every other piece is outside a string.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit
