# SPDX-License-Identifier: Apache-2.0
"""Per-key token buckets, and a short memory of refused keys, in this gateway process (each
replica limits on its own)."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        if self._rate <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:
            # Full buckets carry no state worth keeping; forget them so memory stays bounded.
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self._burst - 1}
        return True


class Recent:
    """Keys seen within the last `ttl_s` seconds (names and addresses found nowhere), bounded:
    at `limit` entries the expired ones go, and if none has expired, all of them."""

    def __init__(self, ttl_s: float, limit: int = 100_000) -> None:
        self._ttl = ttl_s
        self._limit = limit
        self._seen: dict[str, float] = {}

    def fresh(self, key: str, now: float) -> bool:
        seen = self._seen.get(key)
        return seen is not None and now - seen < self._ttl

    def add(self, key: str, now: float) -> None:
        if len(self._seen) >= self._limit:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self._ttl}
            if len(self._seen) >= self._limit:
                self._seen.clear()
        self._seen[key] = now
