# SPDX-License-Identifier: Apache-2.0
"""Every error leaves as OpenAI's `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from zg_sample_backend.schemas import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)


class OpenAIError(Exception):
    """Raised by handlers; the middleware turns it into the error response."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error = ErrorBody(message=message, type=error_type(status), param=param, code=code)
    body = ErrorResponse(error=error).model_dump_json()
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OpenAIError as exc:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_response(404, f"Invalid URL ({request.method} {request.path})")
        # 405 must still say which methods are allowed.
        kept = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = f"{exc.reason} ({request.method} {request.path})"
        return error_response(exc.status, message, headers=kept)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "The server had an error while processing your request.")


def inject_status(status: int) -> Middleware:
    """Failure injection: every /v1/ request fails with `status`; /healthz stays up."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            return error_response(status, f"Injected failure (status {status})")
        return await handler(request)

    return middleware
