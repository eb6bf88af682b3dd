# SPDX-License-Identifier: Apache-2.0
"""What a request may cost, and what its response may be charged, under the terms it is signed
under.

Before signing, the SDK makes every generating request carry an output bound (the user's own
when set, else `max_tokens`) and quotes the request: its input fee, and its worst case, the input
fee plus the output bound times the output price. The user's ceilings (`Limits`) apply to that
quote. After the response, its output fee may be at most `units x output price`, where `units`
is the least of:

- the units the service's counting rule counts in the response (`usage.completion_tokens`,
  else the rule over the generated text);
- the request's output bound (the first of its endpoint's bound fields it sets, as the
  gateway reads it: `zg_shared.endpoints`);
- what the received text can hold: its UTF-8 bytes plus `SLACK_UNITS_PER_CHOICE` for each
  choice received, up to the number the request asks for (`n`, default 1). A token of any
  tokenizer in use (byte-level BPE, SentencePiece with byte fallback) decodes to at least
  one byte, except a few control tokens (end of sequence, channel markers) that the slack
  covers; so a two-word reply cannot be charged for a billion tokens whatever its `usage`
  says, nor padded with empty choices for more slack.

A stream abandoned before its end is charged by the gateway for what it relayed, which may be
more than the SDK read (bytes in flight when it closed): only the output bound applies then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zg_shared.endpoints import ENDPOINTS, generates_output
from zg_shared.jsondepth import too_deep
from zg_shared.metering import RULES, CountingRule, MeteringError, rule_of
from zgserve._sse import MAX_REPLY_DEPTH, read_reply
from zgserve.errors import CeilingExceeded, ZgError
from zgserve.terms import Limits, ServiceTerms

SLACK_UNITS_PER_CHOICE = 32


def _json_object(body: bytes) -> dict[str, Any] | None:
    if too_deep(body, MAX_REPLY_DEPTH):
        return None  # an evidence file's request body, say: never parsed (zg_shared.jsondepth)
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def output_bound(endpoint: str, request_body: bytes) -> int | None:
    """The output bound the request sets, read as the gateway reads it: the first of the
    endpoint's bound fields set (`zg_shared.endpoints`), when it is valid."""
    body = _json_object(request_body)
    asked = None if body is None else ENDPOINTS[endpoint].asked_bound(body)
    value = None if asked is None else asked[1]
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def choices_asked(request_body: bytes) -> int:
    """The choices the request asks for (`n`, default 1): the slack per choice is owed for
    these only, not for empty choices a provider adds to its reply."""
    body = _json_object(request_body)
    n = None if body is None else body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def asks_to_stream(request_body: bytes) -> bool:
    body = _json_object(request_body)
    return body is not None and body.get("stream") is True


def with_output_bound(endpoint: str, body: bytes, default: int) -> bytes:
    """The body to send: a generating request that names no output bound gets `default` in
    its endpoint's last bound field (`max_tokens`), or the endpoint's API default where that
    is lower (OpenAI's /completions: 16, `zg_shared.endpoints`); any other body is sent as the
    user wrote it."""
    spec = ENDPOINTS[endpoint]
    if not spec.generates or not spec.bound_fields:
        return body
    parsed = _json_object(body)
    if parsed is None or spec.asked_bound(parsed) is not None:
        return body
    api_default = spec.default_max_output_units
    bound = min(default, api_default) if api_default else default
    return json.dumps({**parsed, spec.bound_fields[-1]: bound}).encode()


def rule_of_terms(terms: ServiceTerms) -> CountingRule:
    """The counting rule the service registered on chain, as the gateway reads it."""
    try:
        return rule_of(terms.counting_rule)
    except MeteringError:
        raise ZgError(
            f"service {terms.name!r} counts units by the rule {terms.counting_rule!r}, which "
            f"this SDK does not know (it knows {', '.join(sorted(RULES))}): nothing was sent"
        ) from None


@dataclass(frozen=True)
class Quote:
    """One request's price under the terms it is signed under."""

    terms: ServiceTerms
    input_fee: int
    max_output_units: int

    @property
    def worst_output_fee(self) -> int:
        return self.max_output_units * self.terms.output_price

    @property
    def worst_cost(self) -> int:
        return self.input_fee + self.worst_output_fee


def quote(endpoint: str, body: bytes, terms: ServiceTerms, limits: Limits) -> Quote:
    """Raises CeilingExceeded when the request could cost more than `max_request_fee`."""
    rule = rule_of_terms(terms)
    parsed = _json_object(body)
    try:
        units = rule.total(ENDPOINTS[endpoint].input_texts(parsed or {}))
    except MeteringError:
        units = 0  # the gateway answers 400 with the reason; nothing is charged
    max_units = (
        (output_bound(endpoint, body) or limits.max_tokens) if generates_output(endpoint) else 0
    )
    quoted = Quote(terms, units * terms.input_price, max_units)
    if quoted.worst_cost > limits.max_request_fee:
        what = (
            f"this request's worst case ({quoted.input_fee} wei of input plus {max_units} "
            f"output units x {terms.output_price} wei)"
        )
        raise CeilingExceeded("max_request_fee", quoted.worst_cost, limits.max_request_fee, what)
    return quoted


@dataclass(frozen=True)
class Chargeable:
    """The most output units a response may be charged for, and the bounds that made it."""

    units: int
    counted: int
    bound: int | None
    fits: int | None
    wrong_form: bool = False

    def explain(self) -> str:
        if self.wrong_form:
            return (
                "the reply is not in the form the request asked for (a stream or not), so no "
                "client reads it"
            )
        parts = [f"the response counts {self.counted}"]
        if self.bound is not None:
            parts.append(f"the request allows {self.bound}")
        if self.fits is not None:
            parts.append(f"the received text holds at most {self.fits}")
        return "; ".join(parts)


def chargeable_units(
    endpoint: str,
    request_body: bytes,
    response_body: bytes,
    streamed: bool,
    whole: bool,
    rule: CountingRule,
) -> Chargeable:
    """`whole`: the body is the whole response (False for an abandoned stream). `rule`: the
    service's counting rule, by which output without a reported usage is counted."""
    if not generates_output(endpoint):
        return Chargeable(0, 0, None, None)
    bound = output_bound(endpoint, request_body)
    if streamed != asks_to_stream(request_body):
        # An openai client reads a reply in the form it asked for: a plain reply to a stream
        # (or a stream to a plain request) shows the user nothing, whatever it holds.
        return Chargeable(0, 0, bound, 0, wrong_form=True)
    reply = read_reply(
        response_body, streamed, rule, completions=not ENDPOINTS[endpoint].text_in_messages
    )
    choices = min(reply.choices, choices_asked(request_body))
    fits = reply.generated_bytes + SLACK_UNITS_PER_CHOICE * choices
    if not whole:
        # The gateway counted text the SDK never read; the bound alone applies (or, for a
        # request without one, the text received: the SDK never sends such a request).
        counted = bound if bound is not None else fits
        return Chargeable(counted, counted, bound, None if bound is not None else fits)
    units = min(reply.units, fits, bound if bound is not None else reply.units)
    return Chargeable(units, reply.units, bound, fits)
