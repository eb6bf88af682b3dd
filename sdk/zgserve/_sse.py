# SPDX-License-Identifier: Apache-2.0
"""Reading what a provider answered: generated text and usage (plain JSON or SSE), and the
receipt the gateway appends to a stream as an SSE comment line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zg_shared.metering import count_output_units

RECEIPT_COMMENT = b": zg-receipt "


@dataclass(frozen=True)
class StreamReceipt:
    request_id: str
    output_fee: int
    signature: str


def split_stream(raw: bytes) -> tuple[bytes, StreamReceipt | None]:
    """The bytes the backend sent (what the receipt's response hash covers) and the receipt
    comment the gateway appended after them, if any."""
    at = raw.rfind(RECEIPT_COMMENT)
    if at < 0 or (at > 0 and raw[at - 1 : at] != b"\n"):
        return raw, None
    line = raw[at:].split(b"\n", 1)[0].decode("ascii", "replace")
    fields = dict(
        part.split("=", 1) for part in line[len(RECEIPT_COMMENT) :].split() if "=" in part
    )
    try:
        receipt = StreamReceipt(fields["id"], int(fields["output_fee"]), fields["signature"])
    except (KeyError, ValueError):
        return raw, None
    return raw[:at], receipt


def _choice_texts(choices: Any, key: str) -> list[str]:
    texts: list[str] = []
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        part = choice.get(key)
        if isinstance(part, dict) and isinstance(part.get("content"), str):
            texts.append(part["content"])
        if isinstance(choice.get("text"), str):
            texts.append(choice["text"])
    return texts


def output_units(body: bytes, streamed: bool) -> int:
    """Output units by the shared rule: the backend's `usage.completion_tokens`, else words."""
    usage: dict[str, Any] | None = None
    texts: list[str] = []
    if streamed:
        for line in body.split(b"\n"):
            line = line.strip()
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("usage"), dict):
                usage = event["usage"]
            texts += _choice_texts(event.get("choices"), "delta")
    else:
        try:
            payload = json.loads(body)
        except ValueError:
            return 0
        if isinstance(payload, dict):
            usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
            texts = _choice_texts(payload.get("choices"), "message")
    return count_output_units(usage, texts)


def output_bound(request_body: bytes) -> int | None:
    """`max_completion_tokens` / `max_tokens` of the request, when it set one."""
    try:
        body = json.loads(request_body)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
