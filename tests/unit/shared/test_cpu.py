# SPDX-License-Identifier: Apache-2.0
"""CPU per unit of work when several run in one process, and the cores a process may use."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from zg_shared.cpu import available_cpus, run_child, thread_cpu_s

AFFINITY = len(os.sched_getaffinity(0))
# A child that burns `argv[1]` seconds of CPU.
BURN = (
    "import sys, time\n"
    "end = time.process_time() + float(sys.argv[1])\n"
    "while time.process_time() < end: pass"
)


def _burn_in_child(seconds: float) -> float:
    before = thread_cpu_s()
    run_child([sys.executable, "-c", BURN, str(seconds)], check=True)
    return thread_cpu_s() - before


def test_each_thread_is_credited_with_its_own_childs_cpu_only() -> None:
    with ThreadPoolExecutor(2) as pool:
        short, long = pool.map(_burn_in_child, (0.1, 0.6))
    # Each child's start-up adds a little; the other thread's child is never counted.
    assert 0.1 <= short < 0.45
    assert 0.6 <= long < 0.95


def test_a_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")  # one core's worth
    assert available_cpus(cpu_max) == 1
    cpu_max.write_text("50000 100000\n")  # half a core: still one
    assert available_cpus(cpu_max) == 1
    cpu_max.write_text(f"{AFFINITY * 4 * 100000} 100000\n")  # more than the affinity allows
    assert available_cpus(cpu_max) == AFFINITY


def test_no_quota_or_no_cgroup_means_the_affinity(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) == AFFINITY
    assert available_cpus(tmp_path / "absent") == AFFINITY
    cpu_max.write_text("garbage\n")
    assert available_cpus(cpu_max) == AFFINITY
