# SPDX-License-Identifier: Apache-2.0
"""Request nonces that never repeat, for many requests in flight and several processes.

A nonce is `max(previous + 1, microseconds since the epoch x 1024 + offset)`:

- within a process, a lock makes them strictly increasing;
- across processes of one machine, the last nonce lives in a small file under the state
  directory, read and written under an exclusive `flock`, so two processes never draw the
  same one;
- across machines (no shared file) they are time-based with a random per-process `offset`
  in [0, 1024): two machines collide only when they draw within the same microsecond with
  the same offset; the gateway refuses a reused nonce (409, changing nothing) and the SDK
  then retries with a fresh one;
- being time-based, a new nonce is above every nonce the account used before (and so above
  the sealed nonce billing keeps), given a clock that does not run backwards by much.

u64 holds microseconds x 1024 until about the year 2540.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

SPREAD = 1024
U64 = 1 << 64


class NonceAllocator:
    def __init__(self, path: Path | None = None, clock_ns: Callable[[], int] = time.time_ns):
        self.path = path
        self._clock_ns = clock_ns
        self._offset = secrets.randbelow(SPREAD)
        self._last = 0
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def next(self) -> int:
        with self._lock:
            floor = (self._clock_ns() // 1000) * SPREAD + self._offset
            nonce = max(floor, self._last + 1)
            if self.path is not None:
                nonce = self._through_file(nonce)
            if nonce >= U64:
                raise OverflowError("nonce space exhausted")
            self._last = nonce
            return nonce

    def _through_file(self, candidate: int) -> int:
        assert self.path is not None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).strip()
            stored = int(raw) if raw.isdigit() else 0
            nonce = max(candidate, stored + 1)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, str(nonce).encode())
            return nonce
        finally:
            os.close(fd)  # closing releases the lock
