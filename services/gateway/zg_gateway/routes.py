# SPDX-License-Identifier: Apache-2.0
"""HTTP routes: the metered proxy, the receipt lookup, and the provider's service list."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time

import aiohttp
from aiohttp import web
from opentelemetry import trace

from zg_gateway.backend_errors import backend_error
from zg_gateway.bounds import cut_reply
from zg_gateway.clients import client_address
from zg_gateway.errors import BackendFailed, TooLarge
from zg_gateway.keys import BACKEND, METRICS, OUTBOX, SERVICE
from zg_gateway.payment import payment_headers
from zg_gateway.proxy import (
    DROP_REQUEST_HEADERS,
    BackendUnavailable,
    call_backend,
    relay_stream,
)
from zg_gateway.service import Admitted, GatewayService
from zg_shared.endpoints import ENDPOINTS
from zg_shared.replies import Generated

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


def _backend_headers(request: web.Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP_REQUEST_HEADERS}
    headers["Content-Type"] = "application/json"
    return headers


def _labels(admitted: Admitted) -> dict[str, str]:
    return {"service": admitted.service.name, "endpoint": admitted.endpoint.path}


async def _void(request: web.Request, admitted: Admitted, reason: str) -> None:
    """Books an admitted request as costing nothing and releases its reservation."""
    await request.app[SERVICE].finish(
        admitted, charged=False, output_units=0, response_sha256="", reason=reason
    )
    request.app[METRICS].voided.add(1, _labels(admitted))


def _describe_span(admitted: Admitted) -> None:
    """What an SRE searches traces by, on the request's server span (never the signature)."""
    span = trace.get_current_span()
    span.set_attribute("zg.user", admitted.payment.user)
    span.set_attribute("zg.provider", admitted.service.provider)
    span.set_attribute("zg.service", admitted.service.name)
    span.set_attribute("zg.request_id", admitted.request_id)
    span.set_attribute("zg.nonce", str(admitted.payment.nonce))


@routes.post("/v1/proxy/{service}/{endpoint:.+}")
async def paid(request: web.Request) -> web.StreamResponse:
    """Every paid endpoint of `zg_shared.endpoints` (one route, so an unknown endpoint gets
    `unknown_endpoint` from `admit` like any other refusal)."""
    endpoint = ENDPOINTS.get(request.match_info["endpoint"])
    if endpoint is not None and not endpoint.proxied:
        return await settle(request)
    return await proxy(request)


async def _read_body(request: web.Request) -> bytes:
    limit = request.app[SERVICE].settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        # Refused before reading: the client need not upload the rest.
        raise TooLarge("body_too_large", f"the request body is over {limit} bytes")
    return await request.read()


async def _admit(request: web.Request) -> Admitted:
    raw = await _read_body(request)
    return await request.app[SERVICE].admit(
        request.match_info["service"],
        request.match_info["endpoint"],
        payment_headers(request.headers),
        raw,
        content_type=request.headers.get("Content-Type", ""),
        client=client_address(
            request.remote,
            request.headers.getall("X-Forwarded-For", []),
            request.app[SERVICE].settings.trusted_proxy_networks,
        ),
    )


async def proxy(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    gateway = request.app[SERVICE]
    metrics = request.app[METRICS]
    admitted = await _admit(request)
    labels = {"service": admitted.service.name, "endpoint": admitted.endpoint.path}
    _describe_span(admitted)
    metrics.reserved.add(admitted.reservation, labels)
    backend_seconds = 0.0
    try:
        url = f"{admitted.backend_url}/{admitted.endpoint.path}"
        backend_started = time.perf_counter()
        if admitted.stream:
            response = await _stream(request, gateway, admitted, url)
        else:
            response = await _plain(request, gateway, admitted, url)
        backend_seconds = time.perf_counter() - backend_started
    except BaseException:
        # Whatever went wrong after admission, the reservation must not stay taken.
        await _void(request, admitted, "gateway_error")
        raise
    finally:
        request.app[OUTBOX].notify()
    metrics.requests.add(1, {**labels, "status": str(response.status)})
    metrics.added_latency.record(max(0.0, time.perf_counter() - started - backend_seconds), labels)
    return response


async def _plain(
    request: web.Request, gateway: GatewayService, admitted: Admitted, url: str
) -> web.StreamResponse:
    metrics = request.app[METRICS]
    labels = {"service": admitted.service.name, "endpoint": admitted.endpoint.path}
    try:
        reply = await call_backend(
            request.app[BACKEND],
            url,
            admitted.forward_body(),
            _backend_headers(request),
            gateway.settings.backend_timeout_s,
        )
    except BackendUnavailable as exc:
        await _void(request, admitted, "backend_unreachable")
        raise BackendFailed("backend_unavailable", f"the AI backend did not answer: {exc}") from exc
    payload = reply.json()
    if reply.status != 200 or payload is None:
        # The backend refused or failed: the user is told why, plainly, and pays nothing.
        await _void(request, admitted, f"backend_status_{reply.status}")
        raise backend_error(reply.status, reply.body)
    body, units = reply.body, 0
    if admitted.endpoint.generates:
        generated = Generated.of_reply(payload, admitted.rule)
        units = generated.units
        if units > admitted.max_output_units:
            body, units = cut_reply(payload, generated, admitted.max_output_units)
    finished = await gateway.finish(
        admitted,
        charged=True,
        output_units=units,
        response_sha256=hashlib.sha256(body).hexdigest(),
        reason="completed" if body is reply.body else "cut_at_reservation",
    )
    metrics.charged.add(admitted.payment.fee + finished.output_fee, labels)
    return web.Response(
        status=200,
        body=body,
        content_type="application/json",
        headers={
            "ZG-Res-Key": finished.request_id,
            "ZG-Output-Fee": str(finished.output_fee),
            "ZG-Signature": finished.signature,
        },
    )


STREAM_REASONS = {
    "completed": "completed",
    "cut": "cut_at_reservation",
    "client_disconnected": "client_disconnected",
    "client_stalled": "client_stalled",
    "broken": "backend_broke_off",
}


async def _stream(
    request: web.Request, gateway: GatewayService, admitted: Admitted, url: str
) -> web.StreamResponse:
    metrics = request.app[METRICS]
    labels = {"service": admitted.service.name, "endpoint": admitted.endpoint.path}
    try:
        response, error_reply, result = await relay_stream(
            request.app[BACKEND],
            url,
            admitted.forward_body(),
            _backend_headers(request),
            gateway.settings.backend_timeout_s,
            request,
            {"ZG-Res-Key": admitted.request_id},
            admitted.max_output_units,
            admitted.rule,
            gateway.settings.client_stall_s,
        )
    except BackendUnavailable as exc:
        await _void(request, admitted, "backend_unreachable")
        raise BackendFailed("backend_unavailable", f"the AI backend did not answer: {exc}") from exc
    if error_reply is not None:
        await _void(request, admitted, f"backend_status_{error_reply.status}")
        raise backend_error(error_reply.status, error_reply.body)
    assert response is not None
    assert result is not None
    # Charged when the backend finished (or overran and was cut at the bound), or when the user
    # hung up (for what was delivered); voided when the backend broke off: the user did not get
    # what the signature paid for.
    finished = await gateway.finish(
        admitted,
        charged=result.charged,
        output_units=result.generated.units,
        response_sha256=result.body_sha256,
        reason=STREAM_REASONS[result.outcome],
    )
    if result.charged:
        metrics.charged.add(admitted.payment.fee + finished.output_fee, labels)
    else:
        metrics.voided.add(1, labels)
        log.warning(
            "stream %s broken off by the backend of %s: %s",
            admitted.request_id,
            admitted.service.name,
            result.error or ("no finish_reason" if result.generated.done else "no [DONE]"),
        )
    if result.outcome not in ("client_disconnected", "client_stalled"):
        # An SSE comment: ignored by every SSE client, read by the zgserve SDK for the receipt
        # (which also stays available at /v1/proxy/{service}/signature/{id}).
        receipt = (
            f": zg-receipt id={finished.request_id} output_fee={finished.output_fee}"
            f" signature={finished.signature}\n\n"
        )
        try:
            # Booked already: a user who does not read it only holds a connection, so not for
            # longer than a stream may wait on the user.
            async with asyncio.timeout(gateway.settings.client_stall_s):
                await response.write(receipt.encode())
                await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()
    return response


async def settle(request: web.Request) -> web.Response:
    """A fee-only request: pays the output fees the user still owes (Previous-Output-Fee,
    with Input-Fee 0), checked and booked like any request, with no backend call."""
    gateway = request.app[SERVICE]
    admitted = await _admit(request)
    _describe_span(admitted)
    body = json.dumps({"object": "fee_payment", "paid": str(admitted.payment.fee)}).encode()
    try:
        finished = await gateway.finish(
            admitted,
            charged=True,
            output_units=0,
            response_sha256=hashlib.sha256(body).hexdigest(),
            reason="fee_only",
        )
    except BaseException:
        await _void(request, admitted, "gateway_error")
        raise
    finally:
        request.app[OUTBOX].notify()
    labels = _labels(admitted)
    request.app[METRICS].charged.add(admitted.payment.fee, labels)
    request.app[METRICS].requests.add(1, {**labels, "status": "200"})
    return web.Response(
        status=200,
        body=body,
        content_type="application/json",
        headers={
            "ZG-Res-Key": finished.request_id,
            "ZG-Output-Fee": str(finished.output_fee),
            "ZG-Signature": finished.signature,
        },
    )


@routes.get("/v1/proxy/{service}/signature/{request_id}")
async def signature(request: web.Request) -> web.Response:
    receipt = await request.app[SERVICE].receipt(request.match_info["request_id"])
    return web.json_response(receipt)


@routes.get("/v1/services")
async def services(request: web.Request) -> web.Response:
    gateway = request.app[SERVICE]
    listed = await gateway.served_services()
    return web.json_response(
        {"object": "list", "data": [s.model_dump(mode="json") for s in listed]},
    )
