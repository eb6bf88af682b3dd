"""The unit-counting rule both sides run: the gateway to check `Input-Fee`, the user's SDK to
compute it. A service declares its rule; `words` is the default (SPEC section 4).

`words`: whitespace-separated words of every message's text content (chat), of the prompt
(completions) or of the inputs (embeddings). Output units come from the backend's
`usage.completion_tokens` when it reports one, else the same rule over the generated text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_RULE = "words"
RULES = frozenset({DEFAULT_RULE})


class MeteringError(ValueError):
    """The request body does not have the shape its endpoint needs."""


def count_words(texts: Iterable[str]) -> int:
    return sum(len(text.split()) for text in texts)


def _content_texts(content: Any) -> Iterable[str]:
    """Message content is a string, or a list of parts of which only text parts count."""
    if content is None:
        return
    if isinstance(content, str):
        yield content
        return
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise MeteringError("a text part needs a string `text`")
                yield text
        return
    raise MeteringError("message content must be a string or a list of parts")


# A request that only pays output fees still owed (SPEC section 4): no input, no backend call.
FEE_ONLY_ENDPOINT = "settle"
GENERATING_ENDPOINTS = frozenset({"chat/completions", "completions"})


def generates_output(endpoint: str) -> bool:
    """Whether an endpoint's responses carry output units (and so output fees)."""
    return endpoint in GENERATING_ENDPOINTS


def input_texts(endpoint: str, body: Mapping[str, Any]) -> list[str]:
    if endpoint == FEE_ONLY_ENDPOINT:
        return []
    if endpoint == "chat/completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise MeteringError("`messages` must be a non-empty list")
        texts: list[str] = []
        for message in messages:
            if not isinstance(message, Mapping):
                raise MeteringError("each message must be an object")
            texts += _content_texts(message.get("content"))
        return texts
    if endpoint == "completions":
        prompt = body.get("prompt")
        return _strings(prompt, "prompt")
    if endpoint == "embeddings":
        return _strings(body.get("input"), "input")
    raise MeteringError(f"no metering rule for endpoint {endpoint!r}")


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise MeteringError(f"`{name}` must be a string or a list of strings")


def count_input_units(endpoint: str, body: Mapping[str, Any], rule: str = DEFAULT_RULE) -> int:
    if rule not in RULES:
        raise MeteringError(f"unknown counting rule {rule!r}")
    return count_words(input_texts(endpoint, body))


def count_output_units(usage: Mapping[str, Any] | None, generated: Iterable[str]) -> int:
    """`usage.completion_tokens` when the backend reported it, else words of the output."""
    if usage is not None:
        tokens = usage.get("completion_tokens")
        if isinstance(tokens, int) and tokens >= 0:
            return tokens
    return count_words(generated)
