# SPDX-License-Identifier: Apache-2.0
"""zg_shared.replies: SSE events cut from any chunking, output units over the joined text,
and what makes a stream finished."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from zg_shared.replies import Generated, SseSplitter, parse_event


def chunk(*texts: str, finish: str | None = None, index: int = 0) -> bytes:
    choices: list[dict[str, Any]] = [
        {"index": index, "delta": {"content": t}, "finish_reason": None} for t in texts
    ]
    if finish is not None:
        choices.append({"index": index, "delta": {}, "finish_reason": finish})
    return json.dumps({"object": "chat.completion.chunk", "choices": choices}).encode()


def stream(*events: bytes, newline: bytes = b"\n") -> bytes:
    return b"".join(b"data: " + e + newline + newline for e in events)


def generated_of(events: list[bytes]) -> Generated:
    generated = Generated()
    for data in events:
        generated.add(parse_event(data))
    return generated


@given(st.lists(st.integers(min_value=1, max_value=7), max_size=40), st.booleans())
def test_events_are_the_same_however_the_bytes_are_chunked(cuts: list[int], crlf: bool) -> None:
    newline = b"\r\n" if crlf else b"\n"
    raw = stream(
        chunk("Hel"), chunk("lo wor"), chunk("ld", finish="stop"), b"[DONE]", newline=newline
    )
    raw += b": zg-receipt id=1" + newline + newline
    splitter, events, at = SseSplitter(), [], 0
    for size in cuts:
        events += splitter.feed(raw[at : at + size])
        at += size
    events += splitter.feed(raw[at:])
    assert b"".join(e.raw for e in events) == raw
    assert [e.data for e in events] == [
        chunk("Hel"),
        chunk("lo wor"),
        chunk("ld", finish="stop"),
        b"[DONE]",
        None,
    ]
    assert splitter.pending == b""


def test_a_split_word_is_one_word_and_words_per_choice_add_up() -> None:
    generated = generated_of([chunk("Hel"), chunk("lo"), chunk(" wor", "ld ", "again")])
    assert generated.counted == 3
    other = generated_of([chunk("one two", index=0), chunk("three", index=1), chunk("four")])
    assert other.counted == 3  # "one twofour" and "three"
    assert Generated().counted == 0


@given(st.lists(st.text(alphabet=" ab\n\t", max_size=6), max_size=12))
def test_joined_counting_equals_counting_the_joined_text(pieces: list[str]) -> None:
    generated = generated_of([chunk(p) for p in pieces])
    assert generated.counted == len("".join(pieces).split())


def test_counted_with_looks_ahead_without_changing_anything() -> None:
    generated = generated_of([chunk("one tw")])
    assert generated.counted_with(parse_event(chunk("o three"))) == 3
    assert generated.counted == 2


def test_usage_wins_over_words_when_reported() -> None:
    generated = generated_of([chunk("a b c", finish="length"), b"[DONE]"])
    assert generated.units == 3
    usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 12}}
    generated.add(parse_event(json.dumps(usage).encode()))
    assert generated.units == 12
    for bad in (True, -1, "12", None):
        odd = generated_of(
            [chunk("a b c"), json.dumps({"usage": {"completion_tokens": bad}}).encode()]
        )
        assert odd.units == 3


def test_finished_needs_done_a_finish_reason_per_choice_and_no_error() -> None:
    assert generated_of([chunk("a", finish="stop"), b"[DONE]"]).finished
    # An early [DONE]: no finish_reason.
    assert not generated_of([chunk("a"), b"[DONE]"]).finished
    # No [DONE]: the stream broke off after the last chunk.
    assert not generated_of([chunk("a", finish="stop")]).finished
    # Two choices, one never finished.
    assert not generated_of([chunk("a", finish="stop"), chunk("b", index=1), b"[DONE]"]).finished
    # Nothing generated at all.
    assert not generated_of([b"[DONE]"]).finished
    error = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
    failed = generated_of([chunk("a", finish="stop"), error, b"[DONE]"])
    assert not failed.finished
    assert failed.error == {"message": "boom", "type": "server_error"}


def test_plain_replies_chat_and_completions() -> None:
    chat = {
        "choices": [
            {"index": 0, "message": {"content": "one two"}, "finish_reason": "stop"},
            {"index": 1, "message": {"content": "three"}, "finish_reason": "length"},
        ]
    }
    assert (Generated.of_reply(chat).counted, Generated.of_reply(chat).finished) == (3, True)
    completion = {
        "choices": [{"text": "x y", "index": 0, "finish_reason": "stop"}],
        "usage": {"completion_tokens": 4},
    }
    assert Generated.of_reply(completion).units == 4


def test_of_stream_reads_what_the_sdk_received() -> None:
    raw = stream(chunk("Hel"), chunk("lo", finish="stop"), b"[DONE]")
    generated = Generated.of_stream(raw)
    assert (generated.counted, generated.finished) == (1, True)
    # Junk is no event and no text.
    assert Generated.of_stream(b"data: {not json\n\ndata: [1]\n\n: comment\n\n").counted == 0
