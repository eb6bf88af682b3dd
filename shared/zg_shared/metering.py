# SPDX-License-Identifier: Apache-2.0
"""The unit-counting rules both sides run: the gateway to check `Input-Fee` and meter output,
the user's SDK to compute the one and check the other. Each service names its rule on chain
(`Service.counting_rule`, the contract's `countingRule`); both sides read it from there and
look it up in `RULES`, the one table of rules. Adding a rule is one `CountingRule(...)` here.

`words`: whitespace-separated words of the endpoint's input texts (`zg_shared.endpoints`:
every message's text content for chat, the prompt for completions, the inputs for embeddings).
Output units come from the backend's `usage.completion_tokens` when it reports one, else the
same rule over each choice's generated text, joined across a stream's chunks
(`zg_shared.replies`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zg_shared.endpoints import MeteringError, endpoint_of

__all__ = [
    "DEFAULT_RULE",
    "RULES",
    "CountingRule",
    "MeteringError",
    "count_input_units",
    "rule_of",
]


def _no_merge(last: str, text: str) -> int:
    return 0


@dataclass(frozen=True)
class CountingRule:
    """How a service counts the units of a text.

    `count`: the units of one text; it never falls as the text grows. `merged`: how many fewer
    units `text` adds when appended to a text ending in the character `last` ("" at the start)
    than `count(text)`: a stream delivers text in pieces, and a unit cut between two pieces is
    one unit, not two. A rule with `merged` right counts the joined text exactly, piece by
    piece (`units_after`). `tokens_per_unit`: a generous estimate of a model's tokens per
    unit, by which the gateway keeps a prompt and its reply within a declared model context.
    """

    name: str
    count: Callable[[str], int]
    merged: Callable[[str, str], int] = _no_merge
    tokens_per_unit: int = 1

    def total(self, texts: Iterable[str]) -> int:
        return sum(self.count(text) for text in texts)

    def units_after(self, units: int, last: str, text: str) -> tuple[int, str]:
        """Units of the joined text once `text` is appended, and its new last character."""
        if not text:
            return units, last
        return units + self.count(text) - self.merged(last, text), text[-1]


def _words(text: str) -> int:
    return len(text.split())


def _continues_word(last: str, text: str) -> int:
    """1 when `text` continues the word the text before it ended in."""
    return int(bool(last) and not last.isspace() and not text[0].isspace())


WORDS = CountingRule("words", _words, _continues_word, tokens_per_unit=2)
DEFAULT_RULE = WORDS.name
RULES: Mapping[str, CountingRule] = {rule.name: rule for rule in (WORDS,)}


def rule_of(name: str) -> CountingRule:
    rule = RULES.get(name)
    if rule is None:
        raise MeteringError(f"unknown counting rule {name!r} (known: {', '.join(sorted(RULES))})")
    return rule


def count_input_units(endpoint: str, body: Mapping[str, Any], rule: str = DEFAULT_RULE) -> int:
    return rule_of(rule).total(endpoint_of(endpoint).input_texts(body))
