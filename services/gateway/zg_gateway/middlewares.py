# SPDX-License-Identifier: Apache-2.0
"""Request ids, a server span per request, and every error as OpenAI-shaped JSON."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from zg_gateway.errors import GatewayError, NotFound, StateUnavailable, TooLarge
from zg_shared.redisconn import REDIS_AWAY

log = logging.getLogger(__name__)
REQUEST_ID = web.RequestKey("request_id", str)
_propagator = TraceContextTextMapPropagator()


def tracing_middleware(tracer: trace.Tracer) -> web.middleware:  # type: ignore[valid-type]
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        context = _propagator.extract(request.headers)
        route = request.match_info.route.resource
        name = f"{request.method} {route.canonical if route is not None else request.path}"
        with tracer.start_as_current_span(name, context=context, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("url.path", request.path)
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            return response

    return middleware


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = exc.response()
    except web.HTTPRequestEntityTooLarge as exc:
        response = TooLarge(
            "body_too_large", exc.text or "the request body is too large"
        ).response()
    except web.HTTPNotFound:
        response = NotFound("not_found", f"no route {request.method} {request.path}").response()
    except web.HTTPException as exc:
        error = GatewayError("http_error", exc.reason)
        response = error.response()
        response.set_status(exc.status)
    except REDIS_AWAY as exc:
        # Expected during a failover: one line, no traceback; the client retries.
        log.warning(
            "refused %s %s: Redis unavailable (%s: %s)",
            request.method,
            request.path,
            type(exc).__name__,
            exc,
        )
        response = StateUnavailable(
            "state_unavailable",
            "the gateway's state store is unavailable (restarting or failing over); nothing "
            f"was charged: retry in {StateUnavailable.retry_after_s} s with the same nonce",
        ).response()
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = GatewayError(
            "internal_error", "the gateway failed; nothing was charged"
        ).response()
    if not response.prepared:
        response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response
