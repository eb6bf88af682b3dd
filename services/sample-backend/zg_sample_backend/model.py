# SPDX-License-Identifier: Apache-2.0
"""The deterministic "model": replies, token counts, embeddings and ids are pure functions of
the request, so tests and benchmarks can predict every byte (except `created`)."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length"]

# A huge prompt must not make a huge reply: only this many of its words are echoed back.
ECHO_LIMIT = 64


def count_words(text: str) -> int:
    """The protocol's default unit rule: whitespace-separated words."""
    return len(text.split())


def request_id(prefix: str, body: bytes) -> str:
    """The same request body always gets the same id, like every other part of the reply."""
    return f"{prefix}-{hashlib.sha256(body).hexdigest()[:24]}"


@dataclass(frozen=True)
class Generation:
    """The generated tokens in order (their concatenation is the text) and why it stopped."""

    pieces: tuple[str, ...]
    finish_reason: FinishReason

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        return len(self.pieces)


def tokenize(words: tuple[str, ...], piece_chars: int | None = None) -> tuple[str, ...]:
    """One token per word (with its leading space), or, with `piece_chars`, pieces of at most
    that many characters, as a subword tokenizer splits words (a word then spans chunks)."""
    deltas = [word if i == 0 else f" {word}" for i, word in enumerate(words)]
    if piece_chars is None:
        return tuple(deltas)
    return tuple(d[at : at + piece_chars] for d in deltas for at in range(0, len(d), piece_chars))


def natural_reply(prompt: str, reply_words: int | None = None) -> tuple[str, ...]:
    """A template naming the prompt's hash, then the prompt's words echoed back.

    With `reply_words` the same words cycle to exactly that length, for fixed-size benchmarks.
    No word contains whitespace, so the reply's word count is its token count (unless the
    `piece_chars` knob splits words into several tokens).
    """
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    words = ["Sample", "reply", f"{digest}:", *prompt.split()[:ECHO_LIMIT]]
    if reply_words is None:
        return tuple(words)
    return tuple(words[i % len(words)] for i in range(reply_words))


def generate(
    prompt: str,
    max_tokens: int | None,
    reply_words: int | None = None,
    piece_chars: int | None = None,
) -> Generation:
    pieces = tokenize(natural_reply(prompt, reply_words), piece_chars)
    if max_tokens is not None and len(pieces) > max_tokens:
        return Generation(pieces[:max_tokens], "length")
    return Generation(pieces, "stop")


def embed(text: str, dim: int) -> list[float]:
    """A unit vector from SHA-256 of the text, rounded to float32 as OpenAI's are, so the
    float and base64 encodings carry exactly the same numbers."""
    raw = b""
    counter = 0
    while len(raw) < 4 * dim:
        raw += hashlib.sha256(counter.to_bytes(4, "big") + text.encode()).digest()
        counter += 1
    vector = [n / 2**31 - 1.0 for n in struct.unpack(f">{dim}I", raw[: 4 * dim])]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(v / norm for v in vector))))


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32s (the openai client's default)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
