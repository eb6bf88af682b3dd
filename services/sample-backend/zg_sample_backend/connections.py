# SPDX-License-Identifier: Apache-2.0
"""The `drop_kept_alive` knob: a request that arrives on a kept-alive connection is dropped
unanswered (the client sees the server disconnect before any reply), either on any connection
used before or only on one that served a failed stream. Real servers do this when they close a
connection after a failed stream, or at their idle timeout, just as the client reuses it."""

from __future__ import annotations

import asyncio
from typing import Literal
from weakref import WeakSet

from aiohttp import web
from aiohttp.typedefs import Handler


class KeptAlive:
    """The connections (their transports) seen, and those that served a failed stream."""

    def __init__(self, mode: Literal["never", "after_failed_stream", "always"]) -> None:
        self.mode = mode
        self._seen: WeakSet[asyncio.BaseTransport] = WeakSet()
        self._failed: WeakSet[asyncio.BaseTransport] = WeakSet()

    def failed(self, request: web.Request) -> None:
        if request.transport is not None:
            self._failed.add(request.transport)

    def drops(self, request: web.Request) -> bool:
        """Whether to drop this request; records its connection as seen."""
        transport = request.transport
        if transport is None:
            return False
        dropped = (self.mode == "always" and transport in self._seen) or (
            self.mode == "after_failed_stream" and transport in self._failed
        )
        self._seen.add(transport)
        return dropped


KEPT_ALIVE = web.AppKey("kept_alive", KeptAlive)


@web.middleware
async def drop_kept_alive(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.app[KEPT_ALIVE].drops(request) and request.transport is not None:
        request.transport.close()
        return web.Response(status=500)  # never sent: the connection is already closed
    return await handler(request)
