# SPDX-License-Identifier: Apache-2.0
"""Which circuit sizes carry an account's due requests: the rule in docs/billing.md.

A settlement pays gas per chunk, whatever its size N: ~234k per extra chunk in a `settleFees`
call (the pairing check and the account's storage; bench/settlement_gas.py), so fewer, larger
chunks mean less gas per request. Proving costs per slot instead, padding included (~0.2 s of
a core per slot at N=64). The plan for `count` requests minimises

    CHUNK_GAS * chunks + slot_gas * slots

over the sizes billing has keys (and a verifier) for, where `slot_gas` is the operator's price
of proving one slot in gas. With the default (5,000) a handful of requests take small chunks
(5 requests with sizes {4, 64}: two 4-slot chunks, not a 64-slot one with 59 padded slots;
with a 16-slot key: one 16-slot chunk) and a backlog takes the largest (200 requests with
{4, 16, 64}: three 64-slot chunks and a 16-slot one). With `slot_gas` = 0 the plan is simply
the fewest chunks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeVar

CHUNK_GAS = 234_000  # measured: one more chunk in a settleFees call, any N (docs/circuit.md)
DEFAULT_SLOT_GAS = 5_000
T = TypeVar("T")


def plan_chunks(count: int, sizes: Sequence[int], slot_gas: int = DEFAULT_SLOT_GAS) -> list[int]:
    """Chunk sizes for `count` requests of one account, largest first (the order they are cut
    in nonce order); the cheapest plan, ties to fewer slots. `count` >= 1."""
    if count < 1:
        raise ValueError("nothing to plan")
    choices = tuple(sorted(set(sizes), reverse=True))
    if not choices or choices[-1] < 1:
        raise ValueError(f"no usable circuit sizes in {sizes!r}")

    @functools.cache
    def best(left: int) -> tuple[int, int, tuple[int, ...]]:
        """(cost, slots, plan) covering `left` requests."""
        if left <= 0:
            return (0, 0, ())
        options = []
        for n in choices:
            cost, slots, rest = best(left - n)
            options.append((cost + CHUNK_GAS + slot_gas * n, slots + n, (n, *rest)))
        return min(options)

    # Bottom-up, so that a large backlog does not recurse deeply.
    for left in range(1, count):
        best(left)
    return sorted(best(count)[2], reverse=True)


def cut(requests: Sequence[T], plan: Sequence[int]) -> list[list[T]]:
    """`requests` (in nonce order) cut into consecutive chunks of at most plan[i] each."""
    chunks: list[list[T]] = []
    start = 0
    for n in plan:
        if start >= len(requests):
            break
        chunks.append(list(requests[start : start + n]))
        start += n
    if start < len(requests):
        raise ValueError(f"a plan of {sum(plan)} slots cannot hold {len(requests)} requests")
    return chunks


def whole_chunks(requests: Sequence[T], n: int) -> Sequence[T]:
    """The longest prefix of `requests` that fills chunks of `n` exactly (the full-chunk rule
    settles only these; the rest keeps filling the next chunk)."""
    return requests[: len(requests) // n * n]
