# SPDX-License-Identifier: Apache-2.0
"""Concurrent lookups of one key share one call: a burst of requests for an account or a service
not yet cached costs the provider one chain read, not one per request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalesced(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(lambda done: self._done(key, done))
        # Shielded: one waiter's cancellation (its client hung up) does not fail the others.
        return await asyncio.shield(running)

    def _done(self, key: str, done: asyncio.Future[T]) -> None:
        self._running.pop(key, None)
        if not done.cancelled():
            done.exception()  # read, so a failure no waiter saw is not logged as never retrieved
