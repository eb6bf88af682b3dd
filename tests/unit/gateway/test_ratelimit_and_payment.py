# SPDX-License-Identifier: Apache-2.0
"""The gateway's stateless checks: rate limiting and payment-header parsing."""

from __future__ import annotations

import pytest

from zg_gateway.errors import BadRequest
from zg_gateway.payment import check_input_fee, check_output_price, parse_payment
from zg_gateway.ratelimit import RateLimiter

SIGNATURE = "0x" + "11" * 96
USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_the_rate_applies_per_user() -> None:
    clock = Clock()
    limiter = RateLimiter(per_s=2.0, burst=3, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # another user has a bucket of its own
    clock.now += 0.5  # one token back
    assert limiter.allow("a")
    assert not limiter.allow("a")


def test_a_zero_rate_disables_limiting() -> None:
    limiter = RateLimiter(per_s=0, burst=1, clock=Clock())
    assert all(limiter.allow("a") for _ in range(100))


def headers(**changes: str) -> dict[str, str]:
    base = {
        "Address": USER.lower(),
        "Nonce": "7",
        "Input-Fee": "30",
        "Previous-Output-Fee": "12",
        "Fee": "42",
        "Signature": SIGNATURE,
    }
    return {**base, **changes}


def test_well_formed_headers_parse() -> None:
    payment = parse_payment(headers())
    assert (payment.user, payment.nonce, payment.fee) == (USER, 7, 42)
    assert payment.signature_hex == SIGNATURE


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Nonce": "1.5"}, "invalid_header"),
        ({"Nonce": "\u0663"}, "invalid_header"),  # an Arabic-Indic 3: digits are ASCII only
        ({"Nonce": str(2**64)}, "invalid_header"),
        ({"Fee": str(2**128)}, "invalid_header"),
        ({"Address": "0x1234"}, "invalid_header"),
        ({"Signature": "0x1234"}, "invalid_header"),
        ({"Fee": "43"}, "fee_mismatch"),
        ({"ZG-Output-Price": "-1"}, "invalid_header"),
        ({"ZG-Output-Price": str(2**128)}, "invalid_header"),
        ({"ZG-Counting-Rule": " "}, "invalid_header"),
        ({"ZG-Counting-Rule": "w" * 65}, "invalid_header"),
        ({"ZG-Counting-Rule": "wörds"}, "invalid_header"),
        ({"ZG-Receipt-Signer": "0x1234"}, "invalid_header"),
    ],
)
def test_malformed_headers_name_the_problem(change: dict[str, str], code: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_payment(headers(**change))
    assert err.value.code == code


def test_an_input_fee_below_the_rule_is_refused() -> None:
    payment = parse_payment(headers())
    check_input_fee(payment, input_units=3, input_price=10)
    with pytest.raises(BadRequest) as err:
        check_input_fee(payment, input_units=4, input_price=10)
    assert err.value.code == "input_fee_too_low"
    assert err.value.details == {"required": 40}


def test_an_output_price_below_the_one_charged_is_refused() -> None:
    assert parse_payment(headers()).output_price is None  # not sent: nothing to compare
    check_output_price(parse_payment(headers()), output_price=20)
    payment = parse_payment(headers(**{"ZG-Output-Price": "20"}))
    check_output_price(payment, output_price=20)
    with pytest.raises(BadRequest) as err:
        check_output_price(payment, output_price=21)
    assert err.value.code == "output_price_too_low"
    assert err.value.details == {"required": 21}


def test_the_counting_rule_signed_under_is_read() -> None:
    assert parse_payment(headers()).counting_rule is None
    assert parse_payment(headers(**{"ZG-Counting-Rule": " words "})).counting_rule == "words"
