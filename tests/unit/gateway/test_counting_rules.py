# SPDX-License-Identifier: Apache-2.0
"""The service's counting rule and the endpoint's bound fields, read one way by the gateway and
the SDK: input and output are counted by the rule the service registered on chain (any rule of
`zg_shared.metering.RULES`; a rule made here stands in for a new one), and the output bound is
the one the endpoint table names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zg_gateway.body import output_bound as gateway_bound
from zg_gateway.bounds import cut_reply
from zg_gateway.errors import GatewayError
from zg_gateway.service import _rule_of
from zg_shared.chain import Service
from zg_shared.endpoints import ENDPOINTS
from zg_shared.metering import RULES, CountingRule
from zg_shared.replies import Generated
from zgserve._costs import chargeable_units, output_bound

LETTERS = CountingRule("letters", lambda text: sum(c.isalpha() for c in text))


def service(rule: str) -> Service:
    return Service(
        name="chat",
        url="http://backend",
        input_price=1,
        output_price=1,
        signer_address="0x" + "1" * 40,
        counting_rule=rule,
        provider="0x" + "2" * 40,
        updated_at=0,
    )


def test_the_gateway_counts_by_the_registered_rule_and_refuses_one_it_lacks() -> None:
    for name, rule in RULES.items():
        assert _rule_of(service(name)) is rule
    with pytest.raises(GatewayError) as refused:
        _rule_of(service("characters"))
    assert (refused.value.status, refused.value.code) == (500, "unknown_counting_rule")
    assert "'characters'" in refused.value.message


def test_output_is_counted_by_the_rule_over_the_joined_stream() -> None:
    pieces = [{"choices": [{"index": 0, "delta": {"content": t}}]} for t in ("ab c", "d e!")]
    body = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in pieces)
    assert Generated.of_stream(body, LETTERS).units == 5
    assert Generated.of_stream(body).units == 3  # words: "ab", "cd", "e!"
    request = json.dumps(
        {"messages": [{"content": "x"}], "max_tokens": 100, "stream": True}
    ).encode()
    counted = chargeable_units("chat/completions", request, body, True, True, LETTERS)
    assert counted.counted == 5


def test_a_reply_over_its_bound_is_cut_by_the_rule() -> None:
    payload = {"choices": [{"index": 0, "message": {"content": "abcd efgh"}}]}
    generated = Generated.of_reply(payload, LETTERS)
    body, units = cut_reply(payload, generated, 4)
    assert json.loads(body)["choices"][0]["message"]["content"] == "abcd"
    assert units == 4


BODIES: list[dict[str, Any]] = [
    {},
    {"max_tokens": 7},
    {"max_completion_tokens": 3, "max_tokens": 7},
    {"max_completion_tokens": None, "max_tokens": 7},
    {"max_completion_tokens": 3},
]


@pytest.mark.parametrize("path", [p for p, e in ENDPOINTS.items() if e.generates])
@pytest.mark.parametrize("body", BODIES)
def test_the_gateway_and_the_sdk_read_the_same_output_bound(
    path: str, body: dict[str, Any]
) -> None:
    sdk = output_bound(path, json.dumps(body).encode())
    assert gateway_bound(body, ENDPOINTS[path], default=1000) == (sdk or 1000)
