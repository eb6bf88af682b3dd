# SPDX-License-Identifier: Apache-2.0
"""The unit-counting rule both sides run: the gateway to check `Input-Fee`, the user's SDK to
compute it. A service declares its rule; `words` is the default.

`words`: whitespace-separated words of the endpoint's input texts (`zg_shared.endpoints`:
every message's text content for chat, the prompt for completions, the inputs for embeddings).
Output units come from the backend's `usage.completion_tokens` when it reports one, else the
same rule over each choice's generated text, joined across a stream's chunks
(`zg_shared.replies`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from zg_shared.endpoints import MeteringError, endpoint_of

DEFAULT_RULE = "words"
RULES = frozenset({DEFAULT_RULE})

__all__ = [
    "DEFAULT_RULE",
    "RULES",
    "MeteringError",
    "count_input_units",
    "count_words",
]


def count_words(texts: Iterable[str]) -> int:
    return sum(len(text.split()) for text in texts)


def count_input_units(endpoint: str, body: Mapping[str, Any], rule: str = DEFAULT_RULE) -> int:
    if rule not in RULES:
        raise MeteringError(f"unknown counting rule {rule!r}")
    return count_words(endpoint_of(endpoint).input_texts(body))
