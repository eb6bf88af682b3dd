# SPDX-License-Identifier: Apache-2.0
"""A plain reply that overran the output bound the gateway sent the backend, cut to what the
reservation covers: the provider never serves more than it reserved. (Streams are cut as they
are relayed: `proxy._Relay`.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from zg_shared.replies import Generated


def first_words(text: str, count: int) -> str:
    """`text` up to the end of its `count`-th whitespace-separated word."""
    seen, in_word = 0, False
    for at, char in enumerate(text):
        if char.isspace():
            if in_word and seen == count:
                return text[:at]
            in_word = False
        elif not in_word:
            if seen == count:
                return text[:at]
            in_word, seen = True, seen + 1
    return text


def _share(text: str, bound: int, units: int) -> str:
    return first_words(text, len(text.split()) * bound // units)


def cut_reply(payload: Mapping[str, Any], generated: Generated, bound: int) -> tuple[bytes, int]:
    """The reply cut to the share of its text that `bound` output units pay for, and the units
    it is charged: each choice keeps words x bound / units of its words and finishes with
    `length`; a reported usage is set to `bound`. (Tokens cannot be cut without the engine's
    tokenizer, so the share is taken in words.)"""
    units = generated.units
    cut = dict(payload)
    choices = []
    for choice in payload.get("choices") or []:
        if not isinstance(choice, Mapping):
            choices.append(choice)
            continue
        choice = dict(choice)
        if isinstance(choice.get("text"), str):
            choice["text"] = _share(choice["text"], bound, units)
        message = choice.get("message")
        if isinstance(message, Mapping) and isinstance(message.get("content"), str):
            choice["message"] = {**message, "content": _share(message["content"], bound, units)}
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
    return json.dumps(cut).encode(), Generated.of_reply(cut).units
