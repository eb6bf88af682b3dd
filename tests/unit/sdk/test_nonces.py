# SPDX-License-Identifier: Apache-2.0
"""Nonces never repeat: in one process under threads, and across processes sharing the
state file, and they stay time-based (above anything an earlier run used)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from zgserve._nonces import SPREAD, U64, NonceAllocator


def test_strictly_increasing_even_when_the_clock_stands_still() -> None:
    allocator = NonceAllocator(clock_ns=lambda: 1_700_000_000_000_000_000)
    nonces = [allocator.next() for _ in range(5000)]
    assert nonces == sorted(set(nonces))
    assert nonces[0] >= 1_700_000_000_000_000 * SPREAD


def test_time_based_and_within_u64() -> None:
    before = time.time_ns() // 1000 * SPREAD
    nonce = NonceAllocator().next()
    assert before <= nonce < before + 10**6 * SPREAD
    assert nonce < U64


def test_threads_share_one_allocator_without_repeats() -> None:
    allocator = NonceAllocator()
    found: list[int] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [allocator.next() for _ in range(500)]
        with lock:
            found.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == len(set(found)) == 4000


def _draw_in_process(path: str, count: int, queue: multiprocessing.Queue[list[int]]) -> None:
    # A frozen clock makes every process want the same nonces: only the file keeps them apart.
    allocator = NonceAllocator(Path(path), clock_ns=lambda: 1_700_000_000_000_000_000)
    queue.put([allocator.next() for _ in range(count)])


def test_processes_sharing_the_state_file_never_collide(tmp_path: Path) -> None:
    path = tmp_path / "nonces" / "user-provider"
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[int]] = context.Queue()
    processes = [
        context.Process(target=_draw_in_process, args=(str(path), 300, queue)) for _ in range(4)
    ]
    for p in processes:
        p.start()
    found = [n for _ in processes for n in queue.get(timeout=60)]
    for p in processes:
        p.join(timeout=60)
    assert len(found) == len(set(found)) == 1200
    assert int(path.read_text()) == max(found)


def test_a_restarted_process_continues_above_the_stored_nonce(tmp_path: Path) -> None:
    path = tmp_path / "n"
    path.write_text(str(5 * U64 // 6))
    assert NonceAllocator(path).next() == 5 * U64 // 6 + 1
