# SPDX-License-Identifier: Apache-2.0
"""Reading replies (plain and SSE), the receipt comment, amounts and configuration."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from zgserve import ConfigError, load_config
from zgserve._sse import output_bound, output_units, split_stream
from zgserve.cli._common import parse_amount

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


def test_output_units_prefer_usage_then_words() -> None:
    assert output_units(STREAM, streamed=True) == 7
    no_usage = b'data: {"choices":[{"delta":{"content":"one two three"}}]}\n\ndata: [DONE]\n\n'
    assert output_units(no_usage, streamed=True) == 3
    plain = {"choices": [{"message": {"content": "a b"}}], "usage": {"completion_tokens": 5}}
    assert output_units(json.dumps(plain).encode(), streamed=False) == 5
    assert output_units(b"not json", streamed=False) == 0


def test_output_bound_reads_max_tokens() -> None:
    assert output_bound(b'{"max_tokens": 12}') == 12
    assert output_bound(b'{"max_completion_tokens": 3, "max_tokens": 12}') == 3
    assert output_bound(b'{"max_tokens": true}') is None
    assert output_bound(b"[]") is None


@pytest.mark.parametrize(
    ("text", "wei"),
    [("1000", 1000), ("2gwei", 2 * 10**9), ("0.1eth", 10**17), ("1.5 0G", 15 * 10**17)],
)
def test_amounts(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize("text", ["lots", "-1", "0.5", "1.5wei"])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_amount(text)


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
