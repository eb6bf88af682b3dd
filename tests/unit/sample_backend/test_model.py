# SPDX-License-Identifier: Apache-2.0
"""The deterministic model, without HTTP."""

from __future__ import annotations

import math

import pytest

from zg_sample_backend.model import (
    ECHO_LIMIT,
    count_words,
    embed,
    embedding_base64,
    generate,
    natural_reply,
    request_id,
)


def test_words_are_whitespace_separated() -> None:
    assert count_words("  one two\tthree\nfour  ") == 4
    assert count_words("") == 0


def test_the_reply_names_the_prompt_hash_then_echoes_it() -> None:
    words = natural_reply("hello there world")
    assert words[:2] == ("Sample", "reply")
    assert words[3:] == ("hello", "there", "world")
    assert natural_reply("hello there world") == words
    assert natural_reply("hello there World")[2] != words[2]


def test_a_long_prompt_echoes_only_the_limit() -> None:
    assert len(natural_reply("w " * 1000)) == 3 + ECHO_LIMIT


def test_reply_words_fixes_the_length() -> None:
    words = natural_reply("a b", reply_words=12)
    assert len(words) == 12
    assert words[5:10] == words[:5]


@pytest.mark.parametrize(
    ("limit", "reason", "length"), [(None, "stop", 5), (5, "stop", 5), (2, "length", 2)]
)
def test_max_tokens_cuts_the_reply(limit: int | None, reason: str, length: int) -> None:
    generation = generate("a b", limit)
    assert (generation.finish_reason, generation.tokens) == (reason, length)
    assert "".join(generation.pieces) == generation.text
    assert count_words(generation.text) == length


def test_embeddings_are_deterministic_unit_vectors() -> None:
    vector = embed("hello", 8)
    assert vector == embed("hello", 8)
    assert vector != embed("hello!", 8)
    assert len(embed("hello", 100)) == 100
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-6)
    assert isinstance(embedding_base64(vector), str)


def test_ids_follow_the_body() -> None:
    assert request_id("cmpl", b"{}") == request_id("cmpl", b"{}")
    assert request_id("cmpl", b"{}") != request_id("cmpl", b"{ }")


def test_piece_chars_splits_words_into_tokens_that_join_back() -> None:
    whole = generate("hello there", None)
    pieces = generate("hello there", None, piece_chars=3)
    assert pieces.text == whole.text
    assert all(1 <= len(p) <= 3 for p in pieces.pieces)
    assert pieces.tokens > whole.tokens
    cut = generate("hello there", 4, piece_chars=3)
    assert (cut.pieces, cut.finish_reason) == (pieces.pieces[:4], "length")
