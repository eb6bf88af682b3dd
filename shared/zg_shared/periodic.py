# SPDX-License-Identifier: Apache-2.0
"""A step repeated in the background for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable


@contextlib.asynccontextmanager
async def repeating(every_s: float, step: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """Runs `step` every `every_s` seconds (the first one period in) until the block ends.
    A step that failed stops the repeats, and its error is raised as the block ends."""

    async def repeat() -> None:
        while True:
            await asyncio.sleep(every_s)
            await step()

    task = asyncio.create_task(repeat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
