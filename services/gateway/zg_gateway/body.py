# SPDX-License-Identifier: Apache-2.0
"""The request body, from bytes to the checked fields the gateway reads.

CPython's `json.loads` recurses on the C stack: about 100,000 nested brackets crash the whole
process (a segfault, not an exception). So the nesting is measured before the parser runs, in
C-speed passes over the bytes, and a body deeper than any API body is refused. Then every field
the gateway itself reads (`model`, `stream`, `stream_options`, the output bounds; the input
texts are checked by `zg_shared.endpoints`) is type-checked, each refusal naming its field.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from zg_gateway.errors import BadRequest, UnsupportedMedia
from zg_shared.endpoints import Endpoint
from zg_shared.jsondepth import too_deep

# Chat bodies nest about 6 deep (messages, content parts, tool schemas somewhat deeper).
MAX_DEPTH = 64
# An output bound beyond any model's context; its reservation still fits the ledger's decimals.
MAX_OUTPUT_UNITS = 1 << 32
JSON_TYPES = ("application/json",)


def check_content_type(content_type: str, body: bytes) -> None:
    """A JSON endpoint takes a JSON body (`application/json` or a `+json` type); 415 else.
    An empty body (a fee-only settle) needs none."""
    if not body.strip():
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise UnsupportedMedia(
        "unsupported_media_type",
        f"the body must be JSON (Content-Type: application/json), not {media[:60] or 'untyped'}",
        param="Content-Type",
    )


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else, before parsing for a deep one."""
    if too_deep(raw, MAX_DEPTH):
        raise BadRequest("invalid_json", f"the request body nests deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise BadRequest("invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("invalid_json", "the request body must be a JSON object")
    return body


def _refuse(field: str, what: str) -> NoReturn:
    raise BadRequest("invalid_body", f"`{field}` must be {what}", param=field)


def wants_stream(body: dict[str, Any], endpoint: Endpoint) -> bool:
    """`stream` (a boolean or null) and `stream_options` (an object or null, its
    `include_usage` a boolean), checked: the backend must read the same as the gateway."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        _refuse("stream", "true or false")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            _refuse("stream_options", "an object")
        if not isinstance(options.get("include_usage", False), bool):
            _refuse("stream_options.include_usage", "true or false")
    if stream and not endpoint.streams:
        raise BadRequest("stream_unsupported", f"{endpoint.path} cannot stream", param="stream")
    return stream is True


def model_of(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        _refuse("model", "a string")
    return model


def output_bound(body: dict[str, Any], endpoint: Endpoint, default: int) -> int:
    """The request's output bound: the first of the endpoint's bound fields set, else
    `default`; every one set must be a positive integer."""
    found = None
    for name in endpoint.bound_fields:
        value = body.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 < value <= MAX_OUTPUT_UNITS
        ):
            _refuse(name, f"a positive integer up to {MAX_OUTPUT_UNITS}")
        found = value if found is None else found
    return default if found is None else found
