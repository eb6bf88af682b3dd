# SPDX-License-Identifier: Apache-2.0
"""Waiting out an RPC endpoint that is not up yet: a pod may start before its node, and a crash
loop would tell an operator less than a log line per retry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from zg_shared.chain.errors import ChainError
from zg_shared.chain.types import Web3Client

T = TypeVar("T")
log = logging.getLogger(__name__)


async def when_reachable(read: Callable[[], Awaitable[T]], max_delay_s: float = 30.0) -> T:
    """`await read()`, retried with exponential backoff while the chain is unreachable."""
    delay = 0.5
    while True:
        try:
            return await read()
        except (ChainError, aiohttp.ClientError, OSError) as exc:
            log.warning("the chain is not reachable yet (%s); retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)


async def chain_id_when_reachable(w3: Web3Client) -> int:
    async def read() -> int:
        return int(await w3.eth.chain_id)

    return await when_reachable(read)
