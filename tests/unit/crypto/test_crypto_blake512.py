# SPDX-License-Identifier: Apache-2.0
"""BLAKE-512 (the SHA-3 finalist) against the npm blake-hash package."""

from __future__ import annotations

import random
from collections.abc import Callable

from zg_shared.crypto import _fast
from zg_shared.crypto.blake512 import blake512


def test_matches_blake_hash_package(node: Callable[[str, str], str]) -> None:
    rng = random.Random(512)
    # Every length around the one- and two-block padding boundaries, and a few long ones.
    messages = [rng.randbytes(n) for n in [*range(0, 260), 300, 1000, 4099]]
    stdin = "".join((m.hex() or "-") + "\n" for m in messages)
    expected = node("blake512.cjs", stdin).split()
    assert len(expected) == len(messages)
    for message, digest in zip(messages, expected, strict=True):
        assert blake512(message).hex() == digest, len(message)
        assert _fast.blake512(message).hex() == digest, len(message)


def test_accepts_buffers() -> None:
    data = bytes(range(100))
    assert _fast.blake512(bytearray(data)) == _fast.blake512(memoryview(data)) == blake512(data)
