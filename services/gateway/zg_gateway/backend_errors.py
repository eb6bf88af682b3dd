# SPDX-License-Identifier: Apache-2.0
"""A backend's refusal or failure, told to the user as a clear OpenAI-shaped error.

Engines answer errors in many shapes (llama-cpp-python turns an invalid field into a 500 whose
message is the validation error's text; others send HTML or tracebacks). Nothing of a 5xx body is
relayed: it describes the provider's machine, not the request. A 4xx is about the request, so
its message is passed on, reduced to one plain line.
"""

from __future__ import annotations

import json
import re

from zg_gateway.errors import BackendBusy, BackendFailed, BadRequest, GatewayError

MESSAGE_LIMIT = 300
# Signs of a stack trace or source location: such a message is not passed on.
_INTERNALS = re.compile(r"Traceback|File \"|\bline \d+\b|\.py\b|\bat 0x[0-9a-f]+", re.I)
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# The backend refused the gateway itself, not the request: the provider's configuration.
_PROVIDER_SIDE = frozenset({401, 403, 404, 405, 407})


def backend_error(status: int, body: bytes) -> GatewayError:
    """What the user is told when the backend answered `status` (anything but 200)."""
    if status in (429, 503):
        return BackendBusy(
            "backend_busy", "the AI backend is busy; try again shortly (nothing was charged)"
        )
    if 400 <= status < 500 and status not in _PROVIDER_SIDE:
        message, code = _error_fields(body)
        return BadRequest(
            code or "backend_rejected_request",
            f"the AI backend refused the request: {message or f'status {status}'}",
        )
    return BackendFailed(
        "backend_error",
        f"the AI backend failed to answer (status {status}); nothing was charged",
    )


def _error_fields(body: bytes) -> tuple[str, str]:
    """(message, code) of an OpenAI-shaped error body, each safe to pass on, or empty."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):  # TGI: {"error": "message", "error_type": ...}
        error = {"message": error}
    if not isinstance(error, dict):
        return "", ""
    return _plain_line(error.get("message")), _identifier(error.get("code"))


def _plain_line(value: object) -> str:
    if not isinstance(value, str):
        return ""
    line = value.strip().splitlines()[0].strip() if value.strip() else ""
    if _INTERNALS.search(line):
        return ""
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


def _identifier(value: object) -> str:
    return value if isinstance(value, str) and _CODE.match(value) else ""
