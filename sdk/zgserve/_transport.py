# SPDX-License-Identifier: Apache-2.0
"""The httpx2 transport that turns plain OpenAI calls into paid, verified requests.

It signs and attaches the payment headers to every metered call under
`/v1/proxy/{service}/...`, verifies the receipt of every response (plain: from the headers;
streamed: from the SSE comment the gateway appends, else from `GET .../signature/{id}`), and
raises VerificationError on the first bad receipt. Any other request passes through.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2

from zg_shared.endpoints import PAID_PATHS
from zg_shared.metering import MeteringError, count_input_units
from zgserve._provider import ProviderState, SignedPayment
from zgserve._sse import split_stream
from zgserve.errors import ZgError
from zgserve.evidence import EvidenceRecord

METERED = PAID_PATHS
NONCE_CONFLICTS = ("nonce_reused", "nonce_too_low")
NONCE_ATTEMPTS = 3
DONE = b"data: [DONE]"
RECEIPT_WAIT_S = 10.0
# Hop-by-hop or encoding headers that no longer describe the body we hand on.
DROPPED = ("content-length", "transfer-encoding", "content-encoding", "connection")


def _endpoint(path: str) -> tuple[str, str] | None:
    """(service, endpoint) of a metered path /.../v1/proxy/{service}/{endpoint}."""
    marker = "/v1/proxy/"
    at = path.find(marker)
    if at < 0:
        return None
    service, _, rest = path[at + len(marker) :].partition("/")
    return (service, rest) if service and rest in METERED else None


def _error_code(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else ""


def _headers(response: httpx2.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.items() if k.lower() not in DROPPED]


class _VerifyingStream(httpx2.AsyncByteStream):
    """Hands the SSE stream on chunk by chunk and verifies its receipt at the end.

    Iterating it again continues where the last iteration stopped (the openai client reads
    up to `[DONE]`, then drains the rest in a second loop: the receipt comes in that rest).
    A stream closed before `[DONE]` is not verified: the gateway charges what was delivered
    and its receipt stays at `GET .../signature/{id}`.
    """

    def __init__(self, inner: httpx2.Response, on_end: Callable[[bytes], Awaitable[None]]) -> None:
        self._inner = inner
        self._on_end = on_end
        self._body = bytearray()
        self._chunks: AsyncIterator[bytes] | None = None
        self._ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            self._chunks = self._inner.aiter_raw()
        async for chunk in self._chunks:
            self._body += chunk
            yield chunk
        await self._end()

    async def _end(self) -> None:
        if not self._ended:
            self._ended = True
            await self._on_end(bytes(self._body))

    async def aclose(self) -> None:
        """Closed after `[DONE]` but before the receipt (the sync openai client stops reading
        at `[DONE]`): read the little that is left, so the receipt is still verified."""
        try:
            if not self._ended and self._chunks is not None and DONE in self._body:
                async with asyncio.timeout(RECEIPT_WAIT_S):
                    async for chunk in self._chunks:
                        self._body += chunk
                await self._end()
        finally:
            await self._inner.aclose()


class PaidTransport(httpx2.AsyncBaseTransport):
    """`refresh(service)` re-reads a service's terms from the chain: called once when the
    gateway says the input fee is too low (the provider changed its price)."""

    def __init__(
        self,
        state: ProviderState,
        inner: httpx2.AsyncBaseTransport | None = None,
        refresh: Callable[[str], Awaitable[None]] | None = None,
    ):
        self.state = state
        self._inner = inner or httpx2.AsyncHTTPTransport()
        self._refresh = refresh

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        found = _endpoint(request.url.path)
        if found is None or request.method != "POST":
            return await self._inner.handle_async_request(request)
        service, endpoint = found
        self.state.check_usable()
        if service not in self.state.services:
            raise ZgError(f"no terms for service {service!r}: open it with ZgClient.session")
        body = await request.aread()
        refreshed = False
        for attempt in range(NONCE_ATTEMPTS):
            payment = self.state.sign(self._input_fee(service, endpoint, body))
            headers = [
                (k, v)
                for k, v in request.headers.items()
                if k.lower() not in ("content-length", "authorization")
            ]
            headers += list(payment.headers(self.state.user).items())
            paid = httpx2.Request(
                "POST", request.url, headers=headers, content=body, extensions=request.extensions
            )
            # If this raises, the outcome is unknown: whether the gateway took the debt this
            # request carried cannot be told, so it is not offered again (over-paying would
            # be refused); the gateway keeps counting it, and the account's refund shows it.
            response = await self._inner.handle_async_request(paid)
            if response.status_code == 200:
                return await self._served(request, service, endpoint, body, payment, response)
            reply = await response.aread()
            await response.aclose()
            self.state.refund(payment)
            code, retries_left = _error_code(reply), attempt + 1 < NONCE_ATTEMPTS
            if response.status_code == 409 and code in NONCE_CONFLICTS and retries_left:
                continue
            if code == "input_fee_too_low" and self._refresh and not refreshed and retries_left:
                refreshed = True
                await self._refresh(service)
                continue
            return httpx2.Response(
                response.status_code, headers=_headers(response), content=reply, request=request
            )
        raise AssertionError("unreachable")

    def _input_fee(self, service: str, endpoint: str, body: bytes) -> int:
        try:
            parsed: Any = json.loads(body)
            units = count_input_units(endpoint, parsed if isinstance(parsed, dict) else {})
        except (ValueError, MeteringError):
            units = 0  # the gateway answers 400 with the reason; nothing is charged
        return units * self.state.services[service].input_price

    async def _served(
        self,
        request: httpx2.Request,
        service: str,
        endpoint: str,
        body: bytes,
        payment: SignedPayment,
        response: httpx2.Response,
    ) -> httpx2.Response:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            reply = await response.aread()
            await response.aclose()
            record = self.state.receive(
                service,
                endpoint,
                payment,
                body,
                reply,
                streamed=False,
                receipt_id=response.headers.get("ZG-Res-Key", ""),
                output_fee=int(response.headers.get("ZG-Output-Fee", "0") or 0),
                receipt_signature=response.headers.get("ZG-Signature", ""),
            )
            await self._judge(record)
            return httpx2.Response(200, headers=_headers(response), content=reply, request=request)
        request_id = response.headers.get("ZG-Res-Key", "")

        async def on_end(raw: bytes) -> None:
            relayed, receipt = split_stream(raw)
            if receipt is None:
                receipt_json = await self._fetch_receipt(request, service, request_id)
                if receipt_json is None:
                    self.state.refund(payment)  # no receipt anywhere: the request was voided
                    return
                fee, signature = int(receipt_json["output_fee"]), str(receipt_json["signature"])
            else:
                fee, signature = receipt.output_fee, receipt.signature
            if not signature:
                self.state.refund(payment)  # voided (the backend broke off): nothing charged
                return
            record = self.state.receive(
                service,
                endpoint,
                payment,
                body,
                relayed,
                streamed=True,
                receipt_id=request_id,
                output_fee=fee,
                receipt_signature=signature,
            )
            await self._judge(record)

        return httpx2.Response(
            200,
            headers=_headers(response),
            stream=_VerifyingStream(response, on_end),
            request=request,
        )

    async def _judge(self, record: EvidenceRecord) -> None:
        """Verifies a receipt; before calling a failure, reads the service's terms again (the
        provider may have changed its price or receipt key on chain since the session began)."""
        reason = self.state.verdict(record)
        if reason is not None and self._refresh is not None:
            await self._refresh(record.service)
            reason = self.state.verdict(record)
            if reason is None:  # judged under the new terms: the evidence says so
                self.state.replace(
                    record,
                    record.model_copy(update={"terms": self.state.services[record.service]}),
                )
        self.state.conclude(record, reason)

    async def _fetch_receipt(
        self, request: httpx2.Request, service: str, request_id: str
    ) -> dict[str, Any] | None:
        if not request_id:
            return None
        path = request.url.path
        base = path[: path.find("/v1/proxy/")]
        url = request.url.copy_with(path=f"{base}/v1/proxy/{service}/signature/{request_id}")
        lookup = httpx2.Request("GET", url, extensions=request.extensions)
        response = await self._inner.handle_async_request(lookup)
        raw = await response.aread()
        await response.aclose()
        if response.status_code != 200:
            return None
        found: dict[str, Any] = json.loads(raw)
        return found
