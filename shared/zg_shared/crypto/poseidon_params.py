# SPDX-License-Identifier: Apache-2.0
"""Poseidon parameters for circomlib's instance, derived rather than pasted.

circomlib's constants come from the Poseidon authors' reference script
(``generate_parameters_grain.sage 1 0 254 t 8 R_P p``): round constants and a Cauchy MDS
matrix drawn from a Grain LFSR in self-shrinking mode, seeded with the parameters. This
module re-derives them, and the tests check the result against circomlibjs's tables.

It also derives the "optimised" form used by the C extension (constants moved so that a
partial round adds one scalar, and each partial round's MDS split into a sparse matrix).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from zg_shared.crypto.field import P, inv

FULL_ROUNDS = 8
# Partial rounds for t = 2..17, as circomlib (the paper's table, rounded up).
PARTIAL_ROUNDS = (56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68)
MAX_INPUTS = len(PARTIAL_ROUNDS)
_FIELD_BITS = 254

Matrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class PoseidonParams:
    """Reference form: ``C`` has (R_F + R_P) * t round constants, ``M`` is t x t."""

    t: int
    full_rounds: int
    partial_rounds: int
    round_constants: tuple[int, ...]
    mds: Matrix


@dataclass(frozen=True)
class OptimizedParams:
    """Equivalent form with cheap partial rounds (see ``optimized_params``).

    Execution: add ``initial``; then each round is S-box (every cell in full rounds,
    cell 0 in partial ones), linear layer, add a post-constant. First-half full rounds
    use ``mds`` and ``full_constants[0..3]``; partial rounds 0..R_P-2 use ``sparse[i]``
    (the first row, t values, then the column under the diagonal, t-1 values) and add
    ``partial_constants[i]`` to cell 0; the last partial round uses the dense
    ``last_partial`` and adds ``last_partial_constants``; second-half full rounds use
    ``mds`` and ``full_constants[4..7]`` (the last all zero).
    """

    t: int
    full_rounds: int
    partial_rounds: int
    initial: tuple[int, ...]
    # Post-linear constants of the full rounds: first half then second half.
    full_constants: tuple[tuple[int, ...], ...]
    partial_constants: tuple[int, ...]
    last_partial_constants: tuple[int, ...]
    sparse: tuple[tuple[int, ...], ...]
    last_partial: Matrix
    mds: Matrix


class _Grain:
    """The reference script's Grain LFSR (80 bits) used as a self-shrinking generator."""

    # Self-shrinking over 16 fresh bits: pairs (a, b) output b when a == 1.
    _SHRINK: tuple[tuple[int, int], ...] = ()

    def __init__(self, t: int, partial_rounds: int) -> None:
        fields = (
            (1, 2),  # field: prime field
            (0, 4),  # S-box: x^alpha
            (_FIELD_BITS, 12),
            (t, 12),
            (FULL_ROUNDS, 10),
            (partial_rounds, 10),
            ((1 << 30) - 1, 30),
        )
        bits = "".join(format(value, f"0{width}b") for value, width in fields)
        # Bit i of the int is sequence element i (element 0 is the oldest).
        self._state = int(bits[::-1], 2)
        for _ in range(160 // 16):
            self._step16()
        self._acc = 0
        self._acc_bits = 0
        if not _Grain._SHRINK:
            _Grain._SHRINK = tuple(_shrink_entry(chunk) for chunk in range(1 << 16))

    def _step16(self) -> int:
        # Taps 62, 51, 38, 23, 13, 0: the 16 next bits only read bits that already exist.
        s = self._state
        new = (s >> 62 ^ s >> 51 ^ s >> 38 ^ s >> 23 ^ s >> 13 ^ s) & 0xFFFF
        self._state = (s >> 16) | (new << 64)
        return new

    def random_bits(self, count: int) -> int:
        """Next ``count`` output bits as an int, first bit most significant."""
        while self._acc_bits < count:
            value, n = self._SHRINK[self._step16()]
            self._acc = (self._acc << n) | value
            self._acc_bits += n
        extra = self._acc_bits - count
        out = self._acc >> extra
        self._acc &= (1 << extra) - 1
        self._acc_bits = extra
        return out

    def field_element(self) -> int:
        """A round constant: rejection sampling below P."""
        while True:
            value = self.random_bits(_FIELD_BITS)
            if value < P:
                return value


def _shrink_entry(chunk: int) -> tuple[int, int]:
    value, n = 0, 0
    for k in range(0, 16, 2):
        if chunk >> k & 1:
            value = (value << 1) | (chunk >> (k + 1) & 1)
            n += 1
    return value, n


@cache
def poseidon_params(t: int) -> PoseidonParams:
    """Reference parameters for width ``t`` (inputs + 1), 2 <= t <= 17."""
    if not 2 <= t <= MAX_INPUTS + 1:
        raise ValueError(f"Poseidon width t must be in [2, {MAX_INPUTS + 1}], got {t}")
    partial = PARTIAL_ROUNDS[t - 2]
    grain = _Grain(t, partial)
    constants = tuple(grain.field_element() for _ in range((FULL_ROUNDS + partial) * t))
    # Cauchy matrix 1 / (x_i + y_j) over 2t distinct values reduced modulo P. The script
    # then checks the matrix against known weaknesses and redraws if needed; for
    # circomlib's widths the first draw is kept (the tests confirm it against circomlibjs).
    while True:
        values = [grain.random_bits(_FIELD_BITS) % P for _ in range(2 * t)]
        if len(set(values)) != 2 * t:
            continue
        xs, ys = values[:t], values[t:]
        if any((x + y) % P == 0 for x in xs for y in ys):
            continue
        mds = tuple(tuple(inv(x + y) for y in ys) for x in xs)
        return PoseidonParams(t, FULL_ROUNDS, partial, constants, mds)


def _mat_vec(m: Matrix | list[list[int]], v: list[int]) -> list[int]:
    return [sum(a * b for a, b in zip(row, v, strict=True)) % P for row in m]


def _mat_mul(a: Matrix | list[list[int]], b: Matrix | list[list[int]]) -> list[list[int]]:
    cols = list(zip(*b, strict=True))
    return [[sum(x * y for x, y in zip(row, col, strict=True)) % P for col in cols] for row in a]


def _mat_inv(m: list[list[int]]) -> list[list[int]]:
    """Gauss-Jordan inverse modulo P."""
    n = len(m)
    aug = [[*row, *(int(i == j) for j in range(n))] for i, row in enumerate(m)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if aug[r][col] % P)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        scale = inv(aug[col][col])
        aug[col] = [x * scale % P for x in aug[col]]
        for r in range(n):
            if r != col and aug[r][col]:
                f = aug[r][col]
                aug[r] = [(x - f * y) % P for x, y in zip(aug[r], aug[col], strict=True)]
    return [row[n:] for row in aug]


@cache
def optimized_params(t: int) -> OptimizedParams:
    """Derive the cheap-partial-round form of ``poseidon_params(t)``.

    Rewrite each round as "S-box, linear layer, add the next round's constant". In a
    partial round the S-box only touches cell 0, so the constant's other cells can be
    pushed through it and the next linear layer (C_next += M * rest). Then every
    partial round adds a scalar to cell 0, and its matrix N factors as N = L * S with L
    = diag(1, N_hat) and S sparse; L commutes with the next round's S-box and scalar
    add, so it is folded into the next round's matrix (N' = M * L).
    """
    ref = poseidon_params(t)
    rf_half = ref.full_rounds // 2
    rp = ref.partial_rounds
    rounds = ref.full_rounds + rp
    c = [list(ref.round_constants[r * t : (r + 1) * t]) for r in range(rounds)] + [[0] * t]
    m = [list(row) for row in ref.mds]

    for r in range(rf_half + 1, rf_half + rp):
        rest = [0, *c[r][1:]]
        c[r] = [c[r][0]] + [0] * (t - 1)
        c[r + 1] = [(a + b) % P for a, b in zip(c[r + 1], _mat_vec(m, rest), strict=True)]

    sparse: list[tuple[int, ...]] = []
    n = m
    for _ in range(rp - 1):
        n_hat = [row[1:] for row in n[1:]]
        column = _mat_vec(_mat_inv(n_hat), [row[0] for row in n[1:]])
        sparse.append((*n[0], *column))
        l_full = [[int(i == j == 0) for j in range(t)] for i in range(t)]
        for i in range(1, t):
            l_full[i][1:] = n_hat[i - 1]
        n = _mat_mul(m, l_full)

    first_half = tuple(tuple(c[r + 1]) for r in range(rf_half))
    second_half = tuple(tuple(c[r + 1]) for r in range(rf_half + rp, rounds))
    return OptimizedParams(
        t=t,
        full_rounds=ref.full_rounds,
        partial_rounds=rp,
        initial=tuple(c[0]),
        full_constants=first_half + second_half,
        partial_constants=tuple(c[r + 1][0] for r in range(rf_half, rf_half + rp - 1)),
        last_partial_constants=tuple(c[rf_half + rp]),
        sparse=tuple(sparse),
        last_partial=tuple(tuple(row) for row in n),
        mds=ref.mds,
    )
