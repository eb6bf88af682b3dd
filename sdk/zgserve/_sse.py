# SPDX-License-Identifier: Apache-2.0
"""Reading what a provider answered: generated text and usage (plain JSON or SSE), and the
receipt the gateway appends to a stream as an SSE comment line."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zg_shared.jsondepth import too_deep
from zg_shared.metering import WORDS, CountingRule
from zg_shared.replies import Generated

RECEIPT_COMMENT = b": zg-receipt "
# Replies nest a few levels (choices, tool calls, logprobs); far deeper is hostile, and deep
# enough crashes CPython's JSON parser in any process that imported py_ecc (zg_shared.jsondepth).
MAX_REPLY_DEPTH = 256
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _data_lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset of the line, value) of each `data:` line, as an SSE client reads it (any line
    ending, at most one space stripped)."""
    start = 0
    for end in _LINE_END.finditer(body + b"\n"):
        line = body[start : end.start()]
        if line.startswith(b"data:"):
            value = line[5:]
            yield start, value[1:] if value.startswith(b" ") else value
        start = end.end()


def until_done(body: bytes) -> bytes | None:
    """The stream before its `[DONE]` line (a data value that starts with `[DONE]`: the openai
    client stops there), or None when it has none."""
    for start, value in _data_lines(body):
        if value.startswith(b"[DONE]"):
            return body[:start]
    return None


def ended(body: bytes) -> bool:
    """Whether an SSE client has stopped reading the stream: its `[DONE]` arrived, or an
    error event (a JSON object with an `error`: the openai client raises on it)."""
    for _, value in _data_lines(body):
        if value.startswith(b"[DONE]"):
            return True
        if b'"error"' in value and not too_deep(value, MAX_REPLY_DEPTH):
            with contextlib.suppress(ValueError):
                event = json.loads(value)
                if isinstance(event, dict) and event.get("error"):
                    return True
    return False


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


@dataclass(frozen=True)
class Reply:
    """What a response says it generated."""

    usage: dict[str, Any] | None
    # Output units by the rule the gateway meters with (`zg_shared.replies`): the backend's
    # `usage.completion_tokens`, else the service's counting rule over each choice's text,
    # joined across the stream.
    units: int
    generated_bytes: int  # UTF-8 bytes of everything generated: text, reasoning, tool calls
    choices: int


# Fields of a message (or a stream's delta) that hold generated text besides `content`.
GENERATED_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")


def _generated(part: dict[str, Any]) -> list[str]:
    """Every string a model generated in one message or delta, for the size bound."""
    found = [part[k] for k in GENERATED_FIELDS if isinstance(part.get(k), str)]
    calls = part.get("tool_calls")
    functions = (
        [c.get("function") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    )
    functions.append(part.get("function_call"))
    for function in functions:
        if isinstance(function, dict):
            found += [
                function[k] for k in ("name", "arguments") if isinstance(function.get(k), str)
            ]
    return found


class _Collector:
    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.generated = 0
        self.indices: set[object] = set()

    def event(self, event: Any, key: str | None) -> None:
        """`key`: the choice's field that holds a chat reply's text (`message`, `delta`); None
        for a completions reply, whose text is the choice's `text`. Only the endpoint's own
        field counts: another is not what its client shows."""
        if not isinstance(event, dict):
            return
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        choices = event.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            self.indices.add(index if isinstance(index, int) else 0)
            part = choice.get(key) if key is not None else None
            strings: list[str] = []
            if isinstance(part, dict):
                strings = _generated(part)
            if key is None and isinstance(choice.get("text"), str):
                strings.append(choice["text"])
            # surrogatepass: a JSON `\ud800` decodes to a lone surrogate, which strict UTF-8
            # refuses (the check would raise instead of judging the receipt).
            self.generated += sum(len(s.encode("utf-8", "surrogatepass")) for s in strings)

    def reply(self, units: int) -> Reply:
        return Reply(self.usage, units, self.generated, max(1, len(self.indices)))


def read_reply(
    body: bytes, streamed: bool, rule: CountingRule = WORDS, completions: bool = False
) -> Reply:
    """The usage and generated text of a plain JSON reply or of an SSE stream's events; output
    units counted by the service's `rule` where no usage is reported. `completions`: a reply
    of the completions endpoint (text in `choices[].text`), else of chat."""
    collector = _Collector()
    if too_deep(body, MAX_REPLY_DEPTH):
        return collector.reply(0)  # never parsed: nothing in it is owed
    if not streamed:
        payload = None
        with contextlib.suppress(ValueError):
            payload = json.loads(body)
        collector.event(payload, None if completions else "message")
        units = Generated.of_reply(payload, rule).units if isinstance(payload, dict) else 0
        return collector.reply(units)
    # Only what comes before `[DONE]`: an SSE client stops there, so text sent after it
    # (before the receipt comment) reaches no one and is not owed.
    before = until_done(body)
    body = body if before is None else before
    for line in body.split(b"\n"):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        try:
            collector.event(json.loads(line[5:]), None if completions else "delta")
        except ValueError:
            continue
    return collector.reply(Generated.of_stream(body, rule).units)


def output_units(body: bytes, streamed: bool, rule: CountingRule = WORDS) -> int:
    """Output units by the shared rule (`Reply.units`)."""
    return read_reply(body, streamed, rule).units
