# SPDX-License-Identifier: Apache-2.0
"""A plain reply that overran the output bound the gateway sent the backend, cut to what the
reservation covers: the provider never serves more than it reserved. (Streams are cut as they
are relayed: `proxy._Relay`.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from zg_shared.metering import CountingRule
from zg_shared.replies import Generated


def first_units(text: str, count: int, rule: CountingRule) -> str:
    """The longest start of `text` that holds at most `count` units by `rule`, without the
    whitespace it ends in (a rule's count never falls as its text grows)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if rule.count(text[:mid]) <= count:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip()


def _share(text: str, bound: int, units: int, rule: CountingRule) -> str:
    return first_units(text, rule.count(text) * bound // units, rule)


def cut_reply(payload: Mapping[str, Any], generated: Generated, bound: int) -> tuple[bytes, int]:
    """The reply cut to the share of its text that `bound` output units pay for, and the units
    it is charged: each choice keeps (its units x bound / units) units by the service's counting
    rule and finishes with `length`; a reported usage is set to `bound`. (Tokens cannot be cut
    without the engine's tokenizer, so the share is taken by the counting rule.)"""
    units, rule = generated.units, generated.rule
    cut = dict(payload)
    choices = []
    for choice in payload.get("choices") or []:
        if not isinstance(choice, Mapping):
            choices.append(choice)
            continue
        choice = dict(choice)
        if isinstance(choice.get("text"), str):
            choice["text"] = _share(choice["text"], bound, units, rule)
        message = choice.get("message")
        if isinstance(message, Mapping) and isinstance(message.get("content"), str):
            content = _share(message["content"], bound, units, rule)
            choice["message"] = {**message, "content": content}
        choice["finish_reason"] = "length"
        choices.append(choice)
    cut["choices"] = choices
    usage = payload.get("usage")
    if isinstance(usage, Mapping):
        prompt = usage.get("prompt_tokens")
        cut["usage"] = {
            **usage,
            "completion_tokens": bound,
            **({"total_tokens": prompt + bound} if isinstance(prompt, int) else {}),
        }
    return json.dumps(cut).encode(), Generated.of_reply(cut, rule).units
