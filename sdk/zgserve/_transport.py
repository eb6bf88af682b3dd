# SPDX-License-Identifier: Apache-2.0
"""The httpx2 transport that turns plain OpenAI calls into paid, verified requests.

It signs and attaches the payment headers to every metered call under
`/v1/proxy/{service}/...`, verifies the receipt of every response (plain: from the headers;
streamed: from the SSE comment the gateway appends, else from `GET .../signature/{id}`), and
raises VerificationError on the first bad receipt. Any other request passes through.

Every request is signed under the service's terms as the SDK last read them from the chain
(read again when older than `terms_max_age_s`, or when the gateway says the input fee or the
output price is too low), within the user's ceilings, and its receipt is judged under those
terms only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn

import httpx2
from pydantic import BaseModel, Field, ValidationError

from zg_shared.endpoints import PAID_PATHS
from zg_shared.jsondepth import too_deep
from zgserve._costs import quote, with_output_bound
from zgserve._provider import SIGNER_OVERLAP_S, ProviderState, ReceivedReceipt, SignedPayment
from zgserve._sse import MAX_REPLY_DEPTH, ended, split_stream
from zgserve.errors import CeilingExceeded
from zgserve.evidence import EvidenceRecord, receipt_signed_by
from zgserve.terms import Limits, ServiceTerms

METERED = PAID_PATHS
NONCE_CONFLICTS = ("nonce_reused", "nonce_too_low")
NONCE_ATTEMPTS = 3
# The gateway charges more than the terms a request was signed under: read them again.
TERMS_CHANGED = ("input_fee_too_low", "output_price_too_low", "counting_rule_changed")
RECEIPT_WAIT_S = 10.0
TERMS_MAX_AGE_S = 5.0  # the gateway's own cache of the registry holds terms this long
# Hop-by-hop or encoding headers that no longer describe the body we hand on.
DROPPED = ("content-length", "transfer-encoding", "content-encoding", "connection")
log = logging.getLogger(__name__)
TOO_DEEP_ERROR = json.dumps(
    {
        "error": {
            "message": f"the provider's error reply nests deeper than {MAX_REPLY_DEPTH} levels",
            "type": "invalid_response",
            "code": "reply_too_deep",
        }
    }
).encode()


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


def _fee(text: str) -> int | None:
    """A receipt's output fee: ASCII decimal within uint256, else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 78:
        return None
    value = int(text)
    return value if value < 2**256 else None


class StoredReceipt(BaseModel):
    """What `GET /v1/proxy/{service}/signature/{id}` answers."""

    output_fee: int = Field(ge=0, lt=2**256)
    signature: str
    response_body_sha256: str = Field(pattern="^[0-9a-f]{64}$")


class _VerifyingStream(httpx2.AsyncByteStream):
    """Hands the SSE stream on chunk by chunk and verifies its receipt at the end.

    Iterating it again continues where the last iteration stopped (the openai client reads
    up to `[DONE]`, then drains the rest in a second loop: the receipt comes in that rest).
    `on_end(body, abandoned)` runs once: at the end of the stream, or when it is closed.
    """

    def __init__(
        self,
        inner: httpx2.Response,
        on_end: Callable[[bytes, bool], Awaitable[None]],
        on_too_deep: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._on_end = on_end
        self._on_too_deep = on_too_deep
        self._body = bytearray()
        self._chunks: AsyncIterator[bytes] | None = None
        self._ended = False
        self._event_start = 0  # where the event the last chunk left unfinished begins

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            self._chunks = self._inner.aiter_raw()
        async for chunk in self._chunks:
            self._body += chunk
            await self._measure()
            yield chunk
        await self._end(abandoned=False)

    async def _measure(self) -> None:
        """Refuses the stream before handing on an event nested deep enough to crash the
        openai client's JSON parser (`zg_shared.jsondepth`); events end at a blank line."""
        unfinished = bytes(self._body[self._event_start :])
        if too_deep(unfinished, MAX_REPLY_DEPTH):
            self._ended = True
            await self._inner.aclose()
            self._on_too_deep()
        ends = max(unfinished.rfind(b"\n\n"), unfinished.rfind(b"\r\r"))
        if ends >= 0:
            self._event_start += ends + 2

    async def _end(self, abandoned: bool) -> None:
        if not self._ended:
            self._ended = True
            await self._on_end(bytes(self._body), abandoned)

    async def aclose(self) -> None:
        """Closed before the end. After `[DONE]` (the sync openai client stops reading there)
        or an error event (every openai client raises there: the gateway voided the request)
        the little that is left is read, so the receipt comment is verified, or a voided
        request's payment taken back. Before either, the stream is abandoned: closing the
        connection stops the gateway, which charges what it relayed; that receipt is then
        fetched and verified like any other."""
        if self._ended:
            await self._inner.aclose()
            return
        try:
            if self._chunks is not None and ended(bytes(self._body)):
                with contextlib.suppress(TimeoutError, httpx2.HTTPError):
                    async with asyncio.timeout(RECEIPT_WAIT_S):
                        async for chunk in self._chunks:
                            self._body += chunk
        finally:
            await self._inner.aclose()
        await self._end(abandoned=not ended(bytes(self._body)))


class PaidTransport(httpx2.AsyncBaseTransport):
    """`read_terms(service)` reads a service's terms from the chain."""

    def __init__(
        self,
        state: ProviderState,
        read_terms: Callable[[str], Awaitable[ServiceTerms]],
        limits: Limits,
        inner: httpx2.AsyncBaseTransport | None = None,
        *,
        terms_max_age_s: float = TERMS_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.state = state
        self.limits = limits
        self._read_terms = read_terms
        self._inner = inner or httpx2.AsyncHTTPTransport()
        self._terms_max_age_s = terms_max_age_s
        self._clock = clock
        self._read_at: dict[str, float] = {}
        self._reading: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self._inner.aclose()

    def learn(self, terms: ServiceTerms) -> None:
        """Terms just read from the chain (when the session opened)."""
        self.limits.check_terms(self.state.provider, terms)
        self.state.services[terms.name] = terms
        self._read_at[terms.name] = self._clock()

    async def terms(self, service: str, *, read_after: float | None = None) -> ServiceTerms:
        """The terms to sign under: read from the chain again when older than the maximum
        age (or than `read_after`); refused (CeilingExceeded) when above the ceilings."""

        def stale() -> bool:
            read_at = self._read_at.get(service)
            return (
                read_at is None
                or self._clock() - read_at > self._terms_max_age_s
                or (read_after is not None and read_at < read_after)
            )

        if stale():
            async with self._reading.setdefault(service, asyncio.Lock()):
                if stale():  # else another request read them meanwhile
                    started = self._clock()
                    before = self.state.services.get(service)
                    terms = await self._read_terms(service)
                    self.state.services[service] = terms
                    self._read_at[service] = started
                    if before is not None and before.signer_address != terms.signer_address:
                        replaced = self.state.replaced_signers.setdefault(service, {})
                        replaced[before.signer_address.lower()] = started
                    if before is not None and before != terms:
                        log.warning(
                            "service %r of %s changed its terms on chain: input %d -> %d, "
                            "output %d -> %d wei per unit, receipts by %s; new requests are "
                            "signed under the new terms if within your ceilings",
                            service, self.state.provider, before.input_price,
                            terms.input_price, before.output_price, terms.output_price,
                            terms.signer_address,
                        )  # fmt: skip
        terms = self.state.services[service]
        self.limits.check_terms(self.state.provider, terms)
        return terms

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        found = _endpoint(request.url.path)
        if found is None or request.method != "POST":
            return await self._inner.handle_async_request(request)
        service, endpoint = found
        self.state.check_usable()
        body = with_output_bound(endpoint, await request.aread(), self.limits.max_tokens)
        read_after: float | None = None
        for attempt in range(NONCE_ATTEMPTS):
            terms = await self.terms(service, read_after=read_after)
            payment = self.state.sign(
                quote(endpoint, body, terms, self.limits), self.limits.max_debt
            )
            headers = [
                (k, v)
                for k, v in request.headers.items()
                if k.lower() not in ("content-length", "authorization")
            ]
            headers += list(payment.headers(self.state.user).items())
            paid = httpx2.Request(
                "POST", request.url, headers=headers, content=body, extensions=request.extensions
            )
            try:
                response = await self._inner.handle_async_request(paid)
            except BaseException:
                # The outcome is unknown: whether the gateway took the debt this request
                # carried cannot be told, so it is not offered again (over-paying would be
                # refused); the gateway keeps counting it, and the account's refund shows it.
                self.state.unknown(payment)
                raise
            if response.status_code == 200:
                return await self._served(request, service, endpoint, body, payment, response)
            reply = await response.aread()
            await response.aclose()
            if too_deep(reply, MAX_REPLY_DEPTH):
                reply = TOO_DEEP_ERROR  # the openai client parses it: it would crash
            self.state.refused(payment)
            code, retries_left = _error_code(reply), attempt + 1 < NONCE_ATTEMPTS
            if response.status_code == 409 and code in NONCE_CONFLICTS and retries_left:
                continue
            if code in TERMS_CHANGED and read_after is None and retries_left:
                # The provider may have raised its price: read the terms again (refused
                # beyond the ceilings), and sign again only if they changed.
                read_after = self._clock()
                if await self.terms(service, read_after=read_after) != terms:
                    continue
            return httpx2.Response(
                response.status_code, headers=_headers(response), content=reply, request=request
            )
        raise AssertionError("unreachable")

    async def _served(
        self,
        request: httpx2.Request,
        service: str,
        endpoint: str,
        body: bytes,
        payment: SignedPayment,
        response: httpx2.Response,
    ) -> httpx2.Response:
        request_id = response.headers.get("ZG-Res-Key", "")
        if "text/event-stream" not in response.headers.get("content-type", ""):
            try:
                reply = await response.aread()
            except BaseException:
                self.state.unknown(payment)
                raise
            finally:
                await response.aclose()
            if too_deep(reply, MAX_REPLY_DEPTH):
                self.state.unknown(payment)
                self.state.stop(
                    f"the reply nests deeper than {MAX_REPLY_DEPTH} levels, which would crash "
                    "the openai client's JSON parser: not handed on"
                )
            fee_header = response.headers.get("ZG-Output-Fee", "0") or "0"
            fee = _fee(fee_header)
            if fee is None:
                self.state.unknown(payment)
                self.state.stop(f"the receipt's output fee {fee_header[:80]!r} is not an amount")
            receipt = ReceivedReceipt(request_id, fee, response.headers.get("ZG-Signature", ""))
            record = self.state.receive(service, endpoint, payment, body, reply, False, receipt)
            self.state.conclude(payment, await self._rotation(service, record, payment))
            return httpx2.Response(200, headers=_headers(response), content=reply, request=request)

        async def on_end(raw: bytes, abandoned: bool) -> None:
            relayed, comment = split_stream(raw)
            if comment is not None:
                receipt = ReceivedReceipt(request_id, comment.output_fee, comment.signature)
            else:
                wait_s = RECEIPT_WAIT_S if abandoned else 0.0
                stored = await self._fetch_receipt(request, service, request_id, wait_s, payment)
                if stored is None:
                    if abandoned:
                        log.warning(
                            "no receipt for abandoned stream %s of provider %s within %.0f s: "
                            "what it was charged is unknown",
                            request_id, self.state.provider, wait_s,
                        )  # fmt: skip
                        self.state.unknown(payment)
                    else:
                        self.state.refused(payment)  # no receipt anywhere: it was voided
                    return
                whole = stored.response_body_sha256 == hashlib.sha256(relayed).hexdigest()
                receipt = ReceivedReceipt(
                    request_id,
                    stored.output_fee,
                    stored.signature,
                    None if whole else stored.response_body_sha256,
                )
            if not receipt.signature:
                self.state.refused(payment)  # voided (the backend broke off): nothing charged
                return
            if receipt.relayed_sha256 is not None and not abandoned:
                # Read to its end, so the SDK holds all of it: a receipt over anything else
                # would charge bytes never delivered (bounded only by max_tokens). Recorded as
                # whole, so the evidence fails offline too.
                whole_receipt = dataclasses.replace(receipt, relayed_sha256=None)
                self.state.receive(service, endpoint, payment, body, relayed, True, whole_receipt)
                self.state.unknown(payment)
                self.state.stop(
                    f"the receipt of stream {request_id} covers a response (sha256 "
                    f"{receipt.relayed_sha256}) other than the one delivered to its end"
                )
            record = self.state.receive(service, endpoint, payment, body, relayed, True, receipt)
            self.state.conclude(payment, await self._rotation(service, record, payment))

        def too_deep_reply() -> NoReturn:
            self.state.unknown(payment)
            self.state.stop(
                f"the reply nests deeper than {MAX_REPLY_DEPTH} levels, which would crash the "
                "openai client's JSON parser: not handed on"
            )

        return httpx2.Response(
            200,
            headers=_headers(response),
            stream=_VerifyingStream(response, on_end, too_deep_reply),
            request=request,
        )

    async def _rotation(
        self, service: str, record: EvidenceRecord, payment: SignedPayment
    ) -> EvidenceRecord:
        """The record, with its receipt's signer accepted when the provider rotated it: a
        signer this SDK read on chain for the service and saw replaced within
        SIGNER_OVERLAP_S, or the one the chain registers now (read again once: a gateway may
        switch keys before this SDK reads the change). Any other signer is judged as it is:
        refused, with evidence. Fees are judged under the terms at signing either way."""
        terms = record.terms
        try:
            signed_by = receipt_signed_by(record, self.state.user, self.state.provider)
        except ValueError:
            return record  # malformed: refused as it is
        if terms is None or signed_by.lower() == terms.signer_address.lower():
            return record
        replaced = self.state.replaced_signers.get(service, {}).get(signed_by.lower())
        if replaced is None or self._clock() - replaced > SIGNER_OVERLAP_S:
            try:
                now = await self.terms(service, read_after=self._clock())
            except CeilingExceeded:  # read and kept, but above the ceilings for new requests
                now = self.state.services[service]
            except BaseException:
                # The chain cannot say now: the receipt is neither accepted nor held against
                # the provider; its outcome is unknown, as for a failed connection.
                self.state.unknown(payment)
                raise
            if signed_by.lower() != now.signer_address.lower():
                return record
        log.info(
            "receipt %s of provider %s is signed by %s, the service's receipt signer around "
            "the rotation from %s",
            record.receipt_id, self.state.provider, signed_by, terms.signer_address,
        )  # fmt: skip
        return self.state.rotated(record, signed_by)

    async def _fetch_receipt(
        self,
        request: httpx2.Request,
        service: str,
        request_id: str,
        wait_s: float,
        payment: SignedPayment,
    ) -> StoredReceipt | None:
        """The receipt the gateway keeps for `request_id`, asked again while it answers 404
        (not finished yet) for up to `wait_s`; None when there is none."""
        if not request_id:
            return None
        path = request.url.path
        base = path[: path.find("/v1/proxy/")]
        url = request.url.copy_with(path=f"{base}/v1/proxy/{service}/signature/{request_id}")
        deadline, pause = self._clock() + wait_s, 0.05
        while True:
            lookup = httpx2.Request("GET", url, extensions=request.extensions)
            try:
                response = await self._inner.handle_async_request(lookup)
                raw = await response.aread()
                await response.aclose()
            except httpx2.HTTPError:
                return None
            if response.status_code == 200:
                try:
                    return StoredReceipt.model_validate_json(raw)
                except ValidationError:
                    self.state.unknown(payment)
                    self.state.stop(f"the receipt at {url} is malformed")
            if response.status_code != 404 or self._clock() + pause > deadline:
                return None
            await asyncio.sleep(pause)
            pause = min(2 * pause, 0.5)
