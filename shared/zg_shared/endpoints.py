# SPDX-License-Identifier: Apache-2.0
"""The paid endpoints, in one table: the gateway's routes and checks, the metering rule and the
SDK's list of requests to sign are all derived from `ENDPOINTS` (tests/unit/test_architecture.py
refuses a second list). Adding an endpoint is one `Endpoint(...)` line here, plus its text
extractor if its body has a new shape.

Each endpoint says where its input text lies in the request body (`input_texts`, which the
counting rule of `zg_shared.metering` runs over), whether its replies carry output units,
whether it may be asked to stream, whether the gateway calls a backend for it, and its own
defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class MeteringError(ValueError):
    """The request body does not have the shape its endpoint needs; `field` names where."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


TextExtractor = Callable[[Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Endpoint:
    path: str  # after /v1/proxy/{service}/
    input_texts: TextExtractor  # the texts whose units the input fee pays for
    generates: bool  # replies carry output units (and so the gateway reserves for them)
    streams: bool  # may be asked for `stream: true`
    proxied: bool = True  # the gateway forwards it to the service's backend
    # The output bound reserved (and sent to the backend) when the request sets none, as the
    # API's own default (OpenAI's /completions: 16); None: the gateway's
    # `default_max_output_units`.
    default_max_output_units: int | None = None
    # The request fields that bound the output, the first one set winning (OpenAI's order);
    # the gateway sends the reserved bound in all of them, since engines read different ones,
    # and the SDK fills in the last (the one every engine reads) when the user set none.
    bound_fields: tuple[str, ...] = ()
    # Replies hold each choice's text in its `message` (plain) or `delta` (streams), as chat's
    # do; else in its `text`, as completions' do. The SDK counts only that field.
    text_in_messages: bool = False

    def asked_bound(self, body: Mapping[str, Any]) -> tuple[str, Any] | None:
        """The first bound field the body sets (not null) and its value, unchecked: the
        request's own output bound as the gateway and the SDK both read it."""
        for name in self.bound_fields:
            if body.get(name) is not None:
                return name, body[name]
        return None


def _content_texts(content: Any, field: str) -> Iterable[str]:
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
                    raise MeteringError(f"a text part needs a string `text` in `{field}`", field)
                yield text
        return
    raise MeteringError(f"`{field}` must be a string or a list of parts", field)


def chat_texts(body: Mapping[str, Any]) -> list[str]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MeteringError("`messages` must be a non-empty list", "messages")
    texts: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise MeteringError(f"`messages[{index}]` must be an object", f"messages[{index}]")
        texts += _content_texts(message.get("content"), f"messages[{index}].content")
    return texts


def strings_of(field: str) -> TextExtractor:
    """The extractor for a field that holds a string or a list of strings."""

    def extract(body: Mapping[str, Any]) -> list[str]:
        value = body.get(field)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise MeteringError(f"`{field}` must be a string or a list of strings", field)

    return extract


def no_texts(body: Mapping[str, Any]) -> list[str]:
    return []


# A request that only pays output fees still owed: no input, no backend call.
FEE_ONLY_ENDPOINT = "settle"

ENDPOINTS: Mapping[str, Endpoint] = {
    e.path: e
    for e in (
        Endpoint(
            "chat/completions",
            chat_texts,
            generates=True,
            streams=True,
            bound_fields=("max_completion_tokens", "max_tokens"),
            text_in_messages=True,
        ),
        Endpoint(
            "completions",
            strings_of("prompt"),
            generates=True,
            streams=True,
            default_max_output_units=16,
            bound_fields=("max_tokens",),
        ),
        Endpoint("embeddings", strings_of("input"), generates=False, streams=False),
        Endpoint(FEE_ONLY_ENDPOINT, no_texts, generates=False, streams=False, proxied=False),
    )
}
PAID_PATHS = tuple(ENDPOINTS)  # every path a user's SDK signs


def endpoint_of(path: str) -> Endpoint:
    endpoint = ENDPOINTS.get(path)
    if endpoint is None:
        raise MeteringError(f"no metering rule for endpoint {path!r}")
    return endpoint


def generates_output(path: str) -> bool:
    """Whether an endpoint's responses carry output units (and so output fees)."""
    endpoint = ENDPOINTS.get(path)
    return endpoint is not None and endpoint.generates
