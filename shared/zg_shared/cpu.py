# SPDX-License-Identifier: Apache-2.0
"""CPU time per unit of work when several run at once in one process, and how many cores this
process may use.

A prover replica proves several chunks at once, each in its own thread (groth16py proves on
one thread and releases the GIL). A process-wide CPU clock would then charge every chunk with
its neighbours' work, so a chunk's CPU is its thread's own clock plus the CPU of the child
processes that thread ran (the witness generator, snarkjs under node). A child's CPU is only
known process-wide once it is reaped, so `run_child` runs one child at a time and credits its
CPU to the calling thread: exact, at the cost of serialising the children (a native witness is
~3% of a proof; the snarkjs step, a child itself, already uses every core).
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_children = threading.Lock()
_credit = threading.local()
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def thread_cpu_s() -> float:
    """This thread's CPU seconds, plus those of the children it ran through `run_child`."""
    return time.thread_time() + getattr(_credit, "children_s", 0.0)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(args, **kwargs)`, its CPU credited to the calling thread."""
    with _children:
        before = _children_cpu_s()
        try:
            return subprocess.run(list(args), **kwargs)
        finally:
            _credit.children_s = getattr(_credit, "children_s", 0.0) + _children_cpu_s() - before


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container's CPU limit), at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota readable: affinity alone
    return cpus
