# SPDX-License-Identifier: Apache-2.0
"""Why the gateway refuses a request, as exceptions that become OpenAI-shaped JSON errors.

GatewayError                 status, code, message
 ├── BadRequest         400  malformed headers or body, fee arithmetic
 ├── BadSignature       401
 ├── PaymentRequired    402  no account, balance or debt
 ├── NotFound           404  unknown service or receipt
 ├── NonceConflict      409  nonce reused or at/below the sealed nonce
 ├── TooLarge           413
 ├── UnsupportedMedia   415  a body that is not JSON by its Content-Type
 ├── RateLimited        429
 ├── BackendFailed      502  the backend failed, or could not be reached
 ├── BackendBusy        503  the backend answered 429 or 503
 └── StateUnavailable   503  Redis away (down, or failing over): retry after a moment
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web


class GatewayError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    retry_after_s: ClassVar[int | None] = None  # sent as Retry-After where set

    def __init__(
        self, code: str, message: str, *, param: str | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param  # the request field or header at fault, as OpenAI's errors name it
        self.details = details

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        if self.details:
            error["details"] = {
                k: str(v) if isinstance(v, int) else v for k, v in self.details.items()
            }
        response = web.json_response({"error": error}, status=self.status)
        if self.retry_after_s is not None:
            response.headers["Retry-After"] = str(self.retry_after_s)
        return response


class BadRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class BadSignature(GatewayError):
    status = 401
    error_type = "authentication_error"


class PaymentRequired(GatewayError):
    status = 402
    error_type = "insufficient_quota"


class NotFound(GatewayError):
    status = 404
    error_type = "not_found_error"


class NonceConflict(GatewayError):
    status = 409
    error_type = "conflict_error"


class TooLarge(GatewayError):
    status = 413
    error_type = "invalid_request_error"


class UnsupportedMedia(GatewayError):
    status = 415
    error_type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"


class BackendFailed(GatewayError):
    status = 502
    error_type = "server_error"


class BackendBusy(GatewayError):
    status = 503
    error_type = "server_error"


class StateUnavailable(GatewayError):
    status = 503
    error_type = "server_error"
    retry_after_s = 2  # a Sentinel failover takes a few seconds (docs/operations.md drill 2)
