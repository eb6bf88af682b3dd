# SPDX-License-Identifier: Apache-2.0
"""Reading replies (plain and SSE), the receipt comment, amounts and configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zgserve import ConfigError, load_config
from zgserve._amounts import AmountError, parse_amount
from zgserve._costs import output_bound
from zgserve._sse import ended, output_units, read_reply, split_stream, until_done

STREAM = (
    b'data: {"choices":[{"delta":{"content":"one two"}}]}\n\n'
    b'data: {"choices":[],"usage":{"completion_tokens":7}}\n\n'
    b"data: [DONE]\n\n"
)


def test_the_receipt_comment_is_split_off_the_backend_bytes() -> None:
    raw = STREAM + b": zg-receipt id=abc output_fee=140 signature=0x12\n\n"
    relayed, receipt = split_stream(raw)
    assert relayed == STREAM
    assert receipt is not None
    assert (receipt.request_id, receipt.output_fee, receipt.signature) == ("abc", 140, "0x12")


def test_a_stream_without_receipt_or_with_a_broken_one() -> None:
    assert split_stream(STREAM) == (STREAM, None)
    broken = STREAM + b": zg-receipt id=abc output_fee=lots\n\n"
    assert split_stream(broken) == (broken, None)
    # Only a line of its own counts: text that merely contains it is backend data.
    inside = b'data: {"x": ": zg-receipt id=a output_fee=1 signature=0x"}\n\n'
    assert split_stream(inside)[1] is None


@pytest.mark.parametrize(
    ("body", "over"),
    [
        (b'data: {"a": 1}\n\ndata: [DONE]\n\n', True),
        (b'data: {"a": 1}\r\rdata:[DONE]\r\r', True),  # every spelling an SSE client reads
        (b'data: {"a": 1}\n\ndata: [DONE]x\n\n', True),  # the openai client: startswith
        (b'data:{"error": {"message": "voided"}}\n\n', True),
        (b'data: {"a": 1}\n\ndata:  [DONE]\n\n', False),  # two spaces: a value " [DONE]"
        (b'data: {"choices": [{"delta": {"content": "\\"error\\""}}]}\n\n', False),
        (b'data: {"a": 1}\n\n', False),
    ],
)
def test_a_stream_ends_where_an_sse_client_stops(body: bytes, over: bool) -> None:
    assert ended(body) is over


def test_nothing_after_done_is_counted() -> None:
    before = b'data: {"choices": [{"index": 0, "delta": {"content": "two words"}}]}\n\n'
    after = b'data: {"choices": [{"index": 0, "delta": {"content": "more text"}}]}\n\n'
    body = before + b"data:[DONE]\n\n" + after
    assert until_done(body) == before
    assert (read_reply(body, True).units, read_reply(body, True).generated_bytes) == (2, 9)


def test_output_units_prefer_usage_then_words() -> None:
    assert output_units(STREAM, streamed=True) == 7
    no_usage = b'data: {"choices":[{"delta":{"content":"one two three"}}]}\n\ndata: [DONE]\n\n'
    assert output_units(no_usage, streamed=True) == 3
    # A word the engine streamed as two tokens is one word: "one two three", not four.
    split = (
        b'data: {"choices":[{"delta":{"content":"one tw"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"o three"}}]}\n\ndata: [DONE]\n\n'
    )
    assert output_units(split, streamed=True) == 3
    plain = {"choices": [{"message": {"content": "a b"}}], "usage": {"completion_tokens": 5}}
    assert output_units(json.dumps(plain).encode(), streamed=False) == 5
    assert output_units(b"not json", streamed=False) == 0


def test_output_bound_reads_the_endpoints_bound_fields() -> None:
    assert output_bound("chat/completions", b'{"max_tokens": 12}') == 12
    assert output_bound("chat/completions", b'{"max_completion_tokens": 3, "max_tokens": 12}') == 3
    assert output_bound("chat/completions", b'{"max_tokens": true}') is None
    assert output_bound("chat/completions", b"[]") is None
    # /completions has no max_completion_tokens: the gateway ignores it there, and so does the SDK.
    assert output_bound("completions", b'{"max_completion_tokens": 3}') is None


@pytest.mark.parametrize(
    ("text", "wei"),
    [("1000", 1000), ("2gwei", 2 * 10**9), ("0.1eth", 10**17), ("1.5 0G", 15 * 10**17)],
)
def test_amounts(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("lots", "not an amount"),
        ("nan", "not an amount"),
        ("-1", "amounts must be positive"),
        ("0", "amounts must be positive"),
        ("-0.1eth", "amounts must be positive"),
        ("0.5", "not a whole number of wei"),
        ("1.5wei", "not a whole number of wei"),
        ("1e80", "more than any account can hold"),
    ],
)
def test_bad_amounts_say_why(text: str, reason: str) -> None:
    with pytest.raises(AmountError, match=reason):
        parse_amount(text)


def test_amounts_keep_every_digit_and_zero_only_where_allowed() -> None:
    assert parse_amount("1000000000000000000000000000001") == 10**30 + 1
    assert parse_amount("0", allow_zero=True) == 0
    with pytest.raises(AmountError, match="cannot be negative"):
        parse_amount("-1", allow_zero=True)


def test_generated_text_counts_reasoning_and_tool_calls() -> None:
    plain = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "content": "ab",
                    "reasoning_content": "cde",
                    "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                },
            },
            {"index": 1, "message": {"content": "é"}},
        ],
        "usage": {"completion_tokens": 9},
    }
    reply = read_reply(json.dumps(plain).encode(), streamed=False)
    assert (reply.generated_bytes, reply.choices, reply.units) == (2 + 3 + 1 + 2 + 2, 2, 9)
    streamed = read_reply(STREAM, streamed=True)
    assert (streamed.generated_bytes, streamed.choices, streamed.units) == (7, 1, 7)


def test_config_precedence_arguments_env_then_deployment_file(tmp_path: Path) -> None:
    deployment = tmp_path / "deployment.json"
    deployment.write_text(json.dumps({"rpc_url": "http://file", "serving": "0xfile"}))
    env = {"ZG_RPC_URL": "http://env", "ZG_PRIVATE_KEY": "0xkey", "ZG_HOME": str(tmp_path)}
    config = load_config(deployment=deployment, environ=env)
    assert (config.rpc_url, config.contract, config.wallet_key) == ("http://env", "0xfile", "0xkey")
    assert config.state_dir == tmp_path
    assert "0xkey" not in repr(config)
    config = load_config(rpc_url="http://arg", deployment=deployment, environ=env)
    assert config.rpc_url == "http://arg"


def test_config_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RPC URL"):
        load_config(environ={"ZG_DEPLOYMENT": str(tmp_path / "none.json")})
    with pytest.raises(ConfigError, match="no deployment file"):
        load_config(deployment=tmp_path / "none.json", environ={})


def test_only_the_endpoints_own_text_field_counts() -> None:
    """A chat reply's text is in its message (delta); a completions reply's in `text`: the
    other field is not what the endpoint's client shows."""
    choice = {"index": 0, "message": {"content": "two words"}, "text": "x" * 900}
    plain = json.dumps({"choices": [choice]}).encode()
    assert read_reply(plain, False).generated_bytes == 9
    assert read_reply(plain, False, completions=True).generated_bytes == 900
    event = {"choices": [{"index": 0, "delta": {"content": "two words"}, "text": "x" * 900}]}
    stream = f"data: {json.dumps(event)}\n\ndata: [DONE]\n\n".encode()
    assert read_reply(stream, True).generated_bytes == 9
    assert read_reply(stream, True, completions=True).generated_bytes == 900


def test_a_lone_surrogate_is_counted_not_raised() -> None:
    """JSON may escape a lone surrogate (`\\ud800`); its reply is judged, not a crash."""
    body = b'{"choices": [{"index": 0, "message": {"content": "\\ud800 hi"}}]}'
    assert read_reply(body, False).generated_bytes == 6
