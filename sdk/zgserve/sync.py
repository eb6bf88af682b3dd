# SPDX-License-Identifier: Apache-2.0
"""A blocking facade over ZgClient, for scripts and the synchronous `openai.OpenAI` client.

It runs one ZgClient on an event loop in a background thread; every method hands its
coroutine to that loop and waits. `session(...).http` is an `httpx2.Client` whose transport
forwards to the same paying, verifying transport, streams included:

    with SyncZgClient(rpc_url, contract, wallet_key) as zg:
        session = zg.session(provider, "demo-chat")
        ai = openai.OpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx2

from zg_shared.chain import Account, Service, ServiceParams, TxResult
from zgserve.client import RefundStatus, ZgClient

T = TypeVar("T")


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="zgserve", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


async def _next(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


class _BridgeStream(httpx2.SyncByteStream):
    """The async response's bytes, pulled one chunk at a time through the loop. Iterating
    again continues where the last iteration stopped (as the async stream does)."""

    def __init__(self, response: httpx2.Response, loop: _Loop) -> None:
        self._response = response
        self._loop = loop
        self._chunks: AsyncIterator[bytes] | None = None
        self._handed_content = False

    def __iter__(self) -> Iterator[bytes]:
        if self._response.is_stream_consumed and self._chunks is None:
            # Built from bytes (a plain reply the transport already read and verified).
            if not self._handed_content:
                self._handed_content = True
                yield self._response.content
            return
        if self._chunks is None:
            self._chunks = self._response.aiter_raw()
        while (chunk := self._loop.run(_next(self._chunks))) is not None:
            yield chunk

    def close(self) -> None:
        self._loop.run(self._response.aclose())


class _BridgeTransport(httpx2.BaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport, loop: _Loop) -> None:
        self._inner = inner
        self._loop = loop

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        forwarded = httpx2.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=body,
            extensions=request.extensions,
        )
        response = self._loop.run(self._inner.handle_async_request(forwarded))
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_BridgeStream(response, self._loop),
            extensions=response.extensions,
        )

    def close(self) -> None:
        pass  # the async transport is closed with its ZgClient


@dataclass(frozen=True)
class SyncServiceSession:
    provider: str
    service: Service
    base_url: str
    http: httpx2.Client


class SyncZgClient:
    """ZgClient's operations, blocking. Arguments are ZgClient's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = _Loop()
        self.aio = ZgClient(*args, **kwargs)
        self._clients: list[httpx2.Client] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(settle=kind is None)

    @property
    def address(self) -> str:
        return self.aio.address

    def services(self) -> list[Service]:
        return self._loop.run(self.aio.services())

    def service(self, provider: str, name: str) -> Service:
        return self._loop.run(self.aio.service(provider, name))

    def account(self, provider: str) -> Account:
        return self._loop.run(self.aio.account(provider))

    def create_account(self, provider: str, deposit: int = 0) -> Account:
        return self._loop.run(self.aio.create_account(provider, deposit))

    def recover_signing_key(self, provider: str) -> bytes:
        return self._loop.run(self.aio.recover_signing_key(provider))

    def rotate_signing_key(self, provider: str) -> TxResult:
        return self._loop.run(self.aio.rotate_signing_key(provider))

    def deposit(self, provider: str, amount: int) -> TxResult:
        return self._loop.run(self.aio.deposit(provider, amount))

    def request_refund(self, provider: str, amount: int | None = None) -> TxResult:
        return self._loop.run(self.aio.request_refund(provider, amount))

    def refunds(self, provider: str) -> list[RefundStatus]:
        return self._loop.run(self.aio.refunds(provider))

    def process_refunds(self, provider: str, indices: list[int] | None = None) -> TxResult:
        return self._loop.run(self.aio.process_refunds(provider, indices))

    def register_service(self, params: ServiceParams) -> TxResult:
        return self._loop.run(self.aio.register_service(params))

    def remove_service(self, name: str) -> TxResult:
        return self._loop.run(self.aio.remove_service(name))

    def session(
        self, provider: str, service: str, gateway_url: str | None = None
    ) -> SyncServiceSession:
        opened = self._loop.run(self.aio.session(provider, service, gateway_url))
        http = httpx2.Client(
            transport=_BridgeTransport(opened.transport, self._loop), timeout=self.aio.timeout_s
        )
        self._clients.append(http)
        return SyncServiceSession(opened.provider, opened.service, opened.base_url, http)

    def unpaid(self, provider: str) -> int:
        return self.aio.unpaid(provider)

    def settle(self, provider: str) -> int:
        return self._loop.run(self.aio.settle(provider))

    def export_evidence(self, provider: str, path: Path) -> Path:
        return self.aio.export_evidence(provider, path)

    def close(self, *, settle: bool = True) -> None:
        try:
            for http in self._clients:
                http.close()
            self._loop.run(self.aio.close(settle=settle))
        finally:
            self._loop.stop()
