# SPDX-License-Identifier: Apache-2.0
"""BLAKE-512, the SHA-3 finalist (not BLAKE2), as circomlibjs derives EdDSA keys with it.

No maintained PyPI package provides it, so here it is: short, pure Python, used only
for key derivation and per-signature nonces (one 128-byte block per call there).
"""

from __future__ import annotations

_MASK = (1 << 64) - 1

# SHA-512's initial hash value (BLAKE-512 reuses it).
_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)  # fmt: skip

# The first 1024 bits of the fractional part of pi.
_U = (
    0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89,
    0x452821E638D01377, 0xBE5466CF34E90C6C, 0xC0AC29B7C97C50DD, 0x3F84D5B5B5470917,
    0x9216D5D98979FB1B, 0xD1310BA698DFB5AC, 0x2FFD72DBD01ADFB7, 0xB8E1AFED6A267E96,
    0xBA7C9045F12C7F99, 0x24A19947B3916CF7, 0x0801F2E2858EFC16, 0x636920D871574E69,
)  # fmt: skip

_SIGMA = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)
_ROUNDS = 16
# (a, b, c, d) cells of the four column steps then the four diagonal steps.
_STEPS = (
    (0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
    (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14),
)  # fmt: skip


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (64 - n))) & _MASK


def _compress(h: list[int], block: bytes, counter: int) -> None:
    m = [int.from_bytes(block[i : i + 8], "big") for i in range(0, 128, 8)]
    lo, hi = counter & _MASK, counter >> 64
    v = [*h, _U[0], _U[1], _U[2], _U[3], lo ^ _U[4], lo ^ _U[5], hi ^ _U[6], hi ^ _U[7]]
    for r in range(_ROUNDS):
        s = _SIGMA[r % 10]
        for i, (a, b, c, d) in enumerate(_STEPS):
            x, y = s[2 * i], s[2 * i + 1]
            v[a] = (v[a] + v[b] + (m[x] ^ _U[y])) & _MASK
            v[d] = _rotr(v[d] ^ v[a], 32)
            v[c] = (v[c] + v[d]) & _MASK
            v[b] = _rotr(v[b] ^ v[c], 25)
            v[a] = (v[a] + v[b] + (m[y] ^ _U[x])) & _MASK
            v[d] = _rotr(v[d] ^ v[a], 16)
            v[c] = (v[c] + v[d]) & _MASK
            v[b] = _rotr(v[b] ^ v[c], 11)
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]  # the salt is zero, so it drops out


def blake512(data: bytes | bytearray | memoryview) -> bytes:
    """The 64-byte BLAKE-512 digest of ``data`` (zero salt)."""
    data = bytes(data)
    bit_len = len(data) * 8
    # Pad: a 1 bit, zeros, a 1 bit ending byte 111 of a block, then the 128-bit length.
    tail = len(data) % 128
    pad_bytes = 112 - tail if tail <= 111 else 240 - tail
    padding = b"\x81" if pad_bytes == 1 else b"\x80" + bytes(pad_bytes - 2) + b"\x01"
    padded = data + padding + bit_len.to_bytes(16, "big")
    h = list(_IV)
    for offset in range(0, len(padded), 128):
        # The counter is the message bits up to this block's end; a block holding only
        # padding counts zero.
        start_bit = offset * 8
        counter = min(start_bit + 1024, bit_len) if start_bit < bit_len else 0
        _compress(h, padded[offset : offset + 128], counter)
    return b"".join(x.to_bytes(8, "big") for x in h)
