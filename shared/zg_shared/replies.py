# SPDX-License-Identifier: Apache-2.0
"""What an OpenAI-compatible backend generated, read one way by both sides: the gateway meters
and bounds a reply with it, the user's SDK checks the receipt's output fee with it.

Output units: the backend's `usage.completion_tokens` when the reply reports usage (a plain
reply's `usage`, a stream's final usage chunk); otherwise the service's counting rule over each
choice's generated text, joined across the stream's chunks (a word the engine streamed as two
tokens is one word, however it was chunked). Engines that report no usage in streams
(llama-cpp-python's server) are metered that way.

A stream is finished only when it reached `data: [DONE]` with a `finish_reason` for every
choice and no error event: an engine that ends a stream early (`[DONE]` with no
finish_reason) or fails inside it has broken it off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zg_shared.metering import WORDS, CountingRule

DONE = b"[DONE]"


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: its bytes as received (its ending blank line included) and its
    data (data lines joined), or None for an event without data (a comment)."""

    raw: bytes
    data: bytes | None


class SseSplitter:
    """Cuts a byte stream into whole SSE events; lines end in \\n, \\r\\n or \\r (engines
    differ: sse-starlette writes \\r\\n)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer, at, events = self._buffer + chunk, 0, []
        while True:
            end, ending = _line_end(buffer, at)
            if ending == 0:
                break
            line = buffer[at:end]
            self._event += buffer[at : end + ending]
            at = end + ending
            if line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            elif not line:
                events.append(SseEvent(self._event, b"\n".join(self._data) if self._data else None))
                self._event, self._data = b"", []
        self._buffer = buffer[at:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet ended by a blank line."""
        return self._event + self._buffer


def _line_end(buffer: bytes, start: int) -> tuple[int, int]:
    """Where the line from `start` ends and the length of its ending; (start, 0) when no line
    has ended yet. A \r at the very end may be the first half of \r\n: wait for more."""
    newline, cr = buffer.find(b"\n", start), buffer.find(b"\r", start)
    if cr < 0 or 0 <= newline < cr:
        return (newline, 1) if newline >= 0 else (start, 0)
    if cr + 1 == len(buffer):
        return start, 0
    return cr, 2 if buffer[cr + 1] == 0x0A else 1


@dataclass
class _Choice:
    units: int = 0  # by the counting rule, over the joined text
    last: str = ""  # the joined text's last character (a unit may go on in the next piece)
    finish_reason: str | None = None


@dataclass(frozen=True)
class StreamChunk:
    """What one parsed stream event says."""

    texts: tuple[tuple[int, str], ...] = ()  # (choice index, text delta)
    finishes: tuple[tuple[int, str], ...] = ()  # (choice index, finish_reason)
    usage: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    done: bool = False
    body: Mapping[str, Any] | None = None  # the chunk object itself


def parse_event(data: bytes) -> StreamChunk:
    """One event's data: `[DONE]`, an error event, or a chunk. Data that is not a JSON
    object carries nothing."""
    if data.strip() == DONE:
        return StreamChunk(done=True)
    try:
        event = json.loads(data)
    except ValueError:
        return StreamChunk()
    if not isinstance(event, dict):
        return StreamChunk()
    error = event.get("error")
    if error:
        # OpenAI and vLLM send an error object; TGI a message string, with `error_type`.
        return StreamChunk(error=error if isinstance(error, Mapping) else {"message": str(error)})
    texts, finishes = _choice_parts(event.get("choices"), "delta")
    usage = event.get("usage")
    return StreamChunk(texts, finishes, usage if isinstance(usage, Mapping) else None, body=event)


def _choice_parts(
    choices: Any, key: str
) -> tuple[tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]:
    """Text deltas (chat: `delta`/`message` content; completions: `text`) and finish
    reasons, by choice index."""
    texts: list[tuple[int, str]] = []
    finishes: list[tuple[int, str]] = []
    for position, choice in enumerate(choices if isinstance(choices, list) else []):
        if not isinstance(choice, Mapping):
            continue
        index = choice.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else position
        part = choice.get(key)
        if isinstance(part, Mapping) and isinstance(part.get("content"), str):
            texts.append((index, part["content"]))
        if isinstance(choice.get("text"), str):
            texts.append((index, choice["text"]))
        if isinstance(choice.get("finish_reason"), str):
            finishes.append((index, choice["finish_reason"]))
    return tuple(texts), tuple(finishes)


@dataclass
class Generated:
    """What a reply generated so far: units per choice by the service's counting rule, finish
    reasons, usage, errors."""

    rule: CountingRule = WORDS
    usage: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    done: bool = False
    last_chunk: Mapping[str, Any] | None = None
    _choices: dict[int, _Choice] = field(default_factory=dict)

    @classmethod
    def of_reply(cls, payload: Mapping[str, Any], rule: CountingRule = WORDS) -> Generated:
        """A plain (non-streamed) reply."""
        generated = cls(rule)
        texts, finishes = _choice_parts(payload.get("choices"), "message")
        generated.add(StreamChunk(texts, finishes, _mapping(payload.get("usage")), done=True))
        return generated

    @classmethod
    def of_stream(cls, body: bytes, rule: CountingRule = WORDS) -> Generated:
        """A whole relayed stream, as the SDK received it."""
        generated = cls(rule)
        for event in SseSplitter().feed(body + b"\n\n"):
            if event.data is not None:
                generated.add(parse_event(event.data))
        return generated

    def counted_with(self, chunk: StreamChunk) -> int:
        """Units by the counting rule once `chunk` is added (nothing is changed)."""
        state = {i: (c.units, c.last) for i, c in self._choices.items()}
        for index, text in chunk.texts:
            state[index] = self.rule.units_after(*state.get(index, (0, "")), text)
        return sum(units for units, _ in state.values())

    def add(self, chunk: StreamChunk) -> None:
        for index, text in chunk.texts:
            choice = self._choices.setdefault(index, _Choice())
            choice.units, choice.last = self.rule.units_after(choice.units, choice.last, text)
        for index, reason in chunk.finishes:
            self._choices.setdefault(index, _Choice()).finish_reason = reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.error is not None:
            self.error = chunk.error
        if chunk.body is not None:
            self.last_chunk = chunk.body
        self.done = self.done or chunk.done

    @property
    def counted(self) -> int:
        """Units by the counting rule over each choice's joined text."""
        return sum(c.units for c in self._choices.values())

    @property
    def choices(self) -> list[int]:
        return sorted(self._choices)

    @property
    def finished(self) -> bool:
        """Reached the end the engine meant: `[DONE]`, every choice with a finish_reason, no
        error."""
        return (
            self.done
            and self.error is None
            and bool(self._choices)
            and all(c.finish_reason is not None for c in self._choices.values())
        )

    @property
    def units(self) -> int:
        """Output units: reported usage, else the counting rule over the joined text."""
        tokens = self.usage.get("completion_tokens") if self.usage is not None else None
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
            return tokens
        return self.counted


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None
