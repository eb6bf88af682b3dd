# SPDX-License-Identifier: Apache-2.0
"""Waiting for a condition that has no event to await: another process's work, a chain read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]], within_s: float = 90.0, what: str = "condition"
) -> None:
    """Polls `check` until it holds; AssertionError naming `what` after `within_s`."""
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached in {within_s}s")
