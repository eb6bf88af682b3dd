# SPDX-License-Identifier: Apache-2.0
"""What a request may cost before it is signed: the output bound every generating request
carries, the quote, and the user's ceilings, from arguments or the environment."""

from __future__ import annotations

import json

import pytest

from zg_shared.endpoints import ENDPOINTS, FEE_ONLY_ENDPOINT
from zgserve import CeilingExceeded, ConfigError, Limits, ServiceTerms, ZgError
from zgserve._costs import output_bound, quote, with_output_bound
from zgserve._when import duration
from zgserve.config import load_limits

CHAT = next(path for path, e in ENDPOINTS.items() if e.generates and e.streams)
EMBEDDINGS = next(path for path, e in ENDPOINTS.items() if e.proxied and not e.generates)
TERMS = ServiceTerms(name="chat", input_price=10, output_price=20, signer_address="0x" + "1" * 40)
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "a b c"}]}).encode()


def test_a_generating_request_without_a_bound_gets_the_default_max_tokens() -> None:
    sent = with_output_bound(CHAT, BODY, 77)
    assert json.loads(sent) == {**json.loads(BODY), "max_tokens": 77}
    assert output_bound(CHAT, sent) == 77
    # An endpoint whose API has its own, lower default gets that (/completions: 16).
    for path, endpoint in ENDPOINTS.items():
        if endpoint.default_max_output_units:
            sent = with_output_bound(path, b'{"prompt": "a"}', 77)
            assert output_bound(path, sent) == min(77, endpoint.default_max_output_units)


@pytest.mark.parametrize(
    "extra", [{"max_tokens": 5}, {"max_completion_tokens": 5}, {"max_tokens": "lots"}]
)
def test_a_users_own_bound_is_sent_as_written(extra: dict[str, object]) -> None:
    body = json.dumps({**json.loads(BODY), **extra}).encode()
    assert with_output_bound(CHAT, body, 77) == body


def test_bodies_that_generate_nothing_or_are_not_objects_are_left_alone() -> None:
    assert with_output_bound(EMBEDDINGS, b'{"input": "a"}', 77) == b'{"input": "a"}'
    assert with_output_bound(CHAT, b"[1]", 77) == b"[1]"
    assert with_output_bound(FEE_ONLY_ENDPOINT, b"{}", 77) == b"{}"


def test_the_quote_is_input_fee_plus_the_bound_times_the_output_price() -> None:
    quoted = quote(CHAT, with_output_bound(CHAT, BODY, 100), TERMS, Limits())
    assert (quoted.input_fee, quoted.max_output_units) == (3 * 10, 100)
    assert quoted.worst_cost == 30 + 100 * 20


def test_a_request_whose_worst_case_is_above_the_ceiling_is_refused() -> None:
    body = with_output_bound(CHAT, BODY, 100)
    quote(CHAT, body, TERMS, Limits(max_request_fee=30 + 2000))
    with pytest.raises(CeilingExceeded, match="max_request_fee") as caught:
        quote(CHAT, body, TERMS, Limits(max_request_fee=30 + 1999))
    assert (caught.value.value, caught.value.limit) == (2030, 2029)
    assert "nothing was sent" in str(caught.value)


def test_a_counting_rule_the_sdk_does_not_know_is_refused_before_signing() -> None:
    terms = TERMS.model_copy(update={"counting_rule": "characters"})
    with pytest.raises(ZgError, match="rule 'characters', which this SDK does not know"):
        quote(CHAT, BODY, terms, Limits())


def test_prices_above_the_ceilings_are_refused() -> None:
    Limits(max_input_price=10, max_output_price=20).check_terms("0xP", TERMS)
    with pytest.raises(CeilingExceeded, match="input price per unit of service 'chat'"):
        Limits(max_input_price=9).check_terms("0xP", TERMS)
    with pytest.raises(CeilingExceeded, match="max_output_price"):
        Limits(max_output_price=19).check_terms("0xP", TERMS)


def test_limits_come_from_arguments_then_the_environment_then_defaults() -> None:
    env = {"ZG_MAX_INPUT_PRICE": "2gwei", "ZG_MAX_TOKENS": "64", "ZG_MAX_DEBT": "0"}
    limits = load_limits({"max_input_price": 5, "max_output_price": None}, env)
    assert (limits.max_input_price, limits.max_tokens, limits.max_debt) == (5, 64, 0)
    assert load_limits(None, env).max_input_price == 2 * 10**9
    assert load_limits(None, {}) == Limits()
    with pytest.raises(ConfigError, match="ZG_MAX_OUTPUT_PRICE: amounts cannot be negative"):
        load_limits(None, {"ZG_MAX_OUTPUT_PRICE": "-1"})
    with pytest.raises(ConfigError, match="ZG_MAX_TOKENS: amounts must be positive"):
        load_limits(None, {"ZG_MAX_TOKENS": "0"})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (86_399, "23 h 59 min"),
        (86_400 + 60, "24 h 1 min"),
        (2 * 86_400 + 3_600, "2 d 1 h"),
        (250, "4 min 10 s"),
        (-3, "0 s"),
    ],
)
def test_durations_read_as_people_say_them(seconds: int, text: str) -> None:
    assert duration(seconds) == text
