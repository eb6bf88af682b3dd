# SPDX-License-Identifier: Apache-2.0
"""A JSON-RPC forwarder in front of anvil that counts the calls passing through: how a test
sees what a request cost the provider in chain reads."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from eth_utils.abi import function_signature_to_4byte_selector

from zg_shared.localservers import free_port


def selector(signature: str) -> str:
    """A contract function's 4-byte selector as 0x-hex: the key of `CountingRpc.views`."""
    return "0x" + function_signature_to_4byte_selector(signature).hex()


class CountingRpc:
    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_port()
        self.calls: Counter[str] = Counter()
        self.views: Counter[str] = Counter()  # the eth_calls, by function selector
        self.refuse_with: int | None = None  # answer every call with this status (429, say)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    async def _forward(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.refuse_with is not None:
            return web.Response(status=self.refuse_with, text="refused")
        body: Any = json.loads(raw)
        for call in body if isinstance(body, list) else [body]:
            self.calls[str(call.get("method"))] += 1
            if call.get("method") == "eth_call":
                tx = (call.get("params") or [{}])[0]
                self.views[str(tx.get("data") or tx.get("input") or "")[:10]] += 1
        assert self._http is not None
        async with self._http.post(
            self.target, data=raw, headers={"Content-Type": "application/json"}
        ) as resp:
            return web.Response(
                body=await resp.read(), status=resp.status, content_type="application/json"
            )

    async def __aenter__(self) -> CountingRpc:
        self._http = aiohttp.ClientSession()
        app = web.Application(client_max_size=1 << 26)
        app.router.add_post("/{path:.*}", self._forward)  # any path: an API key in it, say
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()
