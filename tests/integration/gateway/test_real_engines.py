# SPDX-License-Identifier: Apache-2.0
"""The ways real engines broke the gateway (llama-cpp-python's server, vLLM), each reproduced
with a sample-backend knob: no usage in streams, ignored or overrun output bounds, errors
inside a stream, a connection closed after a failed stream, an early [DONE], backend errors,
and a model the service does not serve. tests/integration/llama checks the same against the
real engine."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

from tests.integration.gateway.conftest import OUTPUT_PRICE, Provider, User, chat
from tests.integration.gateway.test_gateway import CHAT, WORDS, read_sse, wait_for_events
from zg_sample_backend import BackendSettings
from zg_shared.localservers import free_port
from zgserve._sse import output_units, split_stream

FEE = 30  # 3 words of WORDS x INPUT_PRICE


def knobs(**settings: Any) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "backend_settings", [BackendSettings(port=free_port(), created=1, **settings)]
    )


def data_events(raw: bytes) -> list[Any]:
    """The JSON of every `data:` event of a relayed stream."""
    return [
        json.loads(line[6:])
        for line in raw.decode().splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def streamed_text(raw: bytes) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for event in data_events(raw)
        for choice in event.get("choices", [])
    )


def ai(provider: Provider, user: User, fee: int = FEE) -> openai.AsyncOpenAI:
    """The official client, for one request with the user's next signed payment headers."""
    return openai.AsyncOpenAI(
        base_url=f"{provider.url}/v1/proxy/chat",
        api_key="unused",
        max_retries=0,
        http_client=httpx2.AsyncClient(headers=user.headers(provider.address, fee)),
    )


async def assert_untouched(provider: Provider, user: User) -> None:
    state = await provider.state(user)
    if state is not None:  # None: refused before the account was even read
        assert (state.unsettled, state.output_debt, state.reserved) == (0, 0, 0)


# 1. No usage in streams ------------------------------------------------------------------------


@knobs(stream_usage=False, piece_chars=3)
async def test_a_stream_without_usage_is_metered_by_words_of_the_joined_text(
    provider: Provider,
) -> None:
    user = provider.users[0]
    status, _, raw = await read_sse(
        provider, chat(WORDS, stream=True), user.headers(provider.address, FEE)
    )
    assert status == 200
    relayed, receipt = split_stream(raw)
    assert receipt is not None
    assert not any(event.get("usage") for event in data_events(relayed))
    text = streamed_text(relayed)
    # "Sample reply <hash>: hello there gateway" streamed in pieces of 3 characters: counted
    # per chunk that would be one "word" per piece.
    assert len(text.split()) == 6
    [event] = await wait_for_events(provider, 1)
    assert (event["outcome"], event["output_units"]) == ("charged", 6)
    assert receipt.output_fee == 6 * OUTPUT_PRICE
    # The SDK counts the same bytes by the same rule.
    assert output_units(relayed, streamed=True) == 6


# 2. The bound the reservation was made for ----------------------------------------------------


@knobs(honoured_bounds="max_tokens")
async def test_max_completion_tokens_reaches_an_engine_that_reads_only_max_tokens(
    provider: Provider,
) -> None:
    user = provider.users[0]
    status, headers, raw = await provider.post(
        CHAT, chat(WORDS, max_completion_tokens=2), user.headers(provider.address, FEE)
    )
    assert status == 200, raw
    reply = json.loads(raw)
    assert reply["usage"]["completion_tokens"] == 2
    assert reply["choices"][0]["finish_reason"] == "length"
    assert headers["ZG-Output-Fee"] == str(2 * OUTPUT_PRICE)


@knobs(honoured_bounds="none")
async def test_a_plain_reply_beyond_the_bound_is_cut_to_what_was_reserved(
    provider: Provider,
) -> None:
    user = provider.users[0]
    status, headers, raw = await provider.post(
        CHAT, chat("one two three four five six", max_tokens=3), user.headers(provider.address, 60)
    )
    assert status == 200, raw
    reply = json.loads(raw)
    # The engine generated 9 tokens (words); the user reserved and pays for 3.
    [choice] = reply["choices"]
    assert choice["message"]["content"] == "Sample reply " + choice["message"]["content"].split()[2]
    assert choice["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 3
    assert headers["ZG-Output-Fee"] == str(3 * OUTPUT_PRICE)
    assert output_units(raw, streamed=False) == 3
    [event] = await wait_for_events(provider, 1)
    assert (event["reason"], event["output_units"]) == ("cut_at_reservation", 3)


@knobs(honoured_bounds="none")
async def test_a_stream_beyond_the_bound_ends_at_what_was_reserved(provider: Provider) -> None:
    user = provider.users[0]
    pieces, finish = [], None
    async with ai(provider, user, fee=60) as client:
        stream = await client.chat.completions.create(
            model="zg-demo-1",
            messages=[{"role": "user", "content": "one two three four five six"}],
            max_tokens=4,
            stream=True,
        )
        async for chunk in stream:
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    assert len("".join(pieces).split()) == 4
    assert finish == "length"
    [event] = await wait_for_events(provider, 1)
    assert (event["outcome"], event["reason"]) == ("charged", "cut_at_reservation")
    assert (event["output_units"], event["output_fee"]) == (4, 4 * OUTPUT_PRICE)
    state = await provider.state(user)
    assert state is not None
    assert (state.output_debt, state.reserved) == (4 * OUTPUT_PRICE, 0)


# 3. Default bounds follow the API's, within the model's context ------------------------------


async def test_completions_default_to_openais_16_output_units(provider: Provider) -> None:
    user = provider.users[0]
    prompt = " ".join(f"w{i}" for i in range(20))
    status, headers, raw = await provider.post(
        "/v1/proxy/chat/completions",
        {"model": "zg-demo-1", "prompt": prompt},
        user.headers(provider.address, 20 * 10),
    )
    assert status == 200, raw
    reply = json.loads(raw)
    assert (reply["usage"]["completion_tokens"], reply["choices"][0]["finish_reason"]) == (
        16,
        "length",
    )
    assert headers["ZG-Output-Fee"] == str(16 * OUTPUT_PRICE)


@knobs(reply_words=500)
@pytest.mark.parametrize("gateway_overrides", [{"model_context_tokens": {"chat": 100}}])
async def test_a_declared_context_bounds_every_output_bound(provider: Provider) -> None:
    user = provider.users[0]
    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, FEE))
    assert status == 200, raw
    # min(100 by default, 100 - 2 x 3 input units - 32 for the template) = 62
    assert json.loads(raw)["usage"]["completion_tokens"] == 62
    # A bound the user sets is kept within the context too (the engine cannot go past it).
    for asked, served in ((40, 40), (80, 62)):
        status, _, raw = await provider.post(
            CHAT, chat(WORDS, max_tokens=asked), user.headers(provider.address, FEE)
        )
        assert json.loads(raw)["usage"]["completion_tokens"] == served


# 4 and 6. Streams that fail, or end unfinished, raise in the user's client ---------------------


@pytest.mark.parametrize(
    "backend_settings",
    [
        BackendSettings(port=free_port(), error_after_chunks=2),  # an error event (vLLM)
        # The body just ends (llama-cpp-python, a prompt longer than the context).
        BackendSettings(port=free_port(), error_after_chunks=0, stream_error="end"),
        BackendSettings(port=free_port(), fail_after_chunks=2),  # the connection cut
        BackendSettings(port=free_port(), early_done_after_chunks=2),  # [DONE], no finish
        BackendSettings(port=free_port(), early_done_after_chunks=0),  # [DONE] alone
    ],
    ids=["error-event", "body-ends", "cut", "early-done", "only-done"],
)
async def test_a_stream_the_backend_did_not_finish_raises_and_costs_nothing(
    provider: Provider,
) -> None:
    user = provider.users[0]
    async with ai(provider, user) as client:
        stream = await client.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": WORDS}], stream=True
        )
        with pytest.raises(openai.APIError) as raised:
            async for _ in stream:
                pass
    assert raised.value.message
    [event] = await wait_for_events(provider, 1)
    assert (event["outcome"], event["reason"]) == ("voided", "backend_broke_off")
    await assert_untouched(provider, user)


# 8. Nothing after [DONE] -----------------------------------------------------------------------


@knobs(events_after_done=True, stream_usage=False)
async def test_what_an_engine_sends_after_done_is_neither_relayed_nor_charged(
    provider: Provider,
) -> None:
    """The SDK counts a stream only up to its `[DONE]` (clients stop reading there); an engine
    that goes on after it (here: the reply again) must not be charged for the rest."""
    user = provider.users[0]
    for _ in range(2):  # the second on the kept or a new connection alike
        status, _, raw = await read_sse(
            provider, chat(WORDS, stream=True), user.headers(provider.address, FEE)
        )
        assert status == 200
        relayed, receipt = split_stream(raw)
        assert receipt is not None
        assert relayed.endswith(b"data: [DONE]\n\n")
        assert relayed.count(b"[DONE]") == 1
        units = output_units(relayed, streamed=True)
        assert units == len(streamed_text(relayed).split()) > 0
        assert receipt.output_fee == units * OUTPUT_PRICE
    events = await wait_for_events(provider, 2)
    assert [(e["outcome"], e["output_units"]) for e in events] == [("charged", units)] * 2


# 5. A failed stream does not break the next request --------------------------------------------


@pytest.mark.parametrize(
    "backend_settings",
    [
        BackendSettings(
            port=free_port(), error_after_chunks=2, drop_kept_alive="after_failed_stream"
        ),
        BackendSettings(
            port=free_port(),
            error_after_chunks=0,
            stream_error="end",
            drop_kept_alive="after_failed_stream",
        ),
    ],
    ids=["error-event", "body-ends"],
)
async def test_the_connection_of_a_failed_stream_is_not_reused(provider: Provider) -> None:
    user = provider.users[0]
    status, _, _ = await read_sse(
        provider, chat(WORDS, stream=True), user.headers(provider.address, FEE)
    )
    assert status == 200
    for _ in range(5):
        status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, FEE))
        assert status == 200, raw


@knobs(drop_kept_alive="always")
async def test_a_request_dropped_before_any_answer_is_sent_again_on_a_new_connection(
    provider: Provider,
) -> None:
    user = provider.users[0]
    for stream in (False, True, False, True):
        status, _, raw = await read_sse(
            provider, chat(WORDS, stream=stream), user.headers(provider.address, FEE)
        )
        assert status == 200, raw
    events = await wait_for_events(provider, 4)
    assert [e["outcome"] for e in events] == ["charged"] * 4


# 7. Backend errors and unknown models ----------------------------------------------------------


async def test_a_request_the_backend_refuses_is_a_clear_400(provider: Provider) -> None:
    user = provider.users[0]
    status, _, raw = await provider.post(
        CHAT, chat(WORDS, n=2), user.headers(provider.address, FEE)
    )
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("the AI backend refused the request: n:")
    [event] = await wait_for_events(provider, 1)
    assert event["outcome"] == "voided"
    await assert_untouched(provider, user)


async def test_a_model_the_service_does_not_serve_is_refused_and_changes_nothing(
    provider: Provider,
) -> None:
    user = provider.users[0]
    headers = user.headers(provider.address, FEE)
    for model in ("gpt-4", 7):
        status, _, raw = await provider.post(CHAT, {**chat(WORDS), "model": model}, headers)
        error = json.loads(raw)["error"]
        assert (status, error["code"]) == (
            (404, "model_not_found") if model == "gpt-4" else (400, "invalid_body")
        )
        await assert_untouched(provider, user)
    # The nonce was not used: the same signed headers serve the registered model.
    status, _, raw = await provider.post(CHAT, chat(WORDS), headers)
    assert status == 200, raw
    body = chat(WORDS)
    del body["model"]  # filled in with the registered model
    status, _, raw = await provider.post(CHAT, body, user.headers(provider.address, FEE))
    assert status == 200, raw


@knobs(status_override=500)
async def test_a_backend_failure_is_a_502_that_relays_none_of_its_text(provider: Provider) -> None:
    user = provider.users[0]
    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, FEE))
    assert status == 502
    error = json.loads(raw)["error"]
    assert (error["type"], error["code"]) == ("server_error", "backend_error")
    assert "Injected" not in error["message"]
    await assert_untouched(provider, user)
