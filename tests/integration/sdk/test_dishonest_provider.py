# SPDX-License-Identifier: Apache-2.0
"""A dishonest provider (tests/integration/sdk/dishonest.py: a small real HTTP server that
signs its receipts with the service's registered key) cannot make the SDK pay more than the
user agreed to: not a price raised on chain after the request was signed, not output units
beyond the `max_tokens` the SDK sends, not more units than the text it received can hold."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import openai
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.sdk.conftest import DEPOSIT, OUTPUT_PRICE, SERVICE, Network
from tests.integration.sdk.dishonest import Answer, Asked, DishonestProvider
from zgserve import Evidence, Limits, VerificationError, ZgClient, verify_evidence

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "hello there"}
]


async def _honest(asked: Asked) -> Answer:
    return Answer("one two three", 3, 3 * OUTPUT_PRICE)


@pytest.fixture
async def dishonest(
    deployed: Network, keys: list[LocalAccount]
) -> AsyncIterator[DishonestProvider]:
    """The service's registered URL points at the dishonest provider."""
    provider = DishonestProvider(deployed.provider, keys[2], _honest)
    await provider.start()
    await deployed.reprice(url=provider.url)
    try:
        yield provider
    finally:
        await provider.close()


async def _ask(zg: ZgClient, network: Network, stream: bool, **extra: object) -> str:
    session = await zg.session(network.provider, SERVICE)
    ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
    if not stream:
        reply = await ai.chat.completions.create(
            model="zg-demo-1", messages=MESSAGES, extra_body=extra
        )
        return reply.choices[0].message.content or ""
    chunks = await ai.chat.completions.create(
        model="zg-demo-1", messages=MESSAGES, stream=True, extra_body=extra
    )
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


async def _accepted(network: Network, stream: bool, **extra: object) -> tuple[str, int]:
    """One request on a fresh account whose reply the SDK accepts: the text the user got and
    what the SDK owes the provider for it (left unsettled)."""
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        text = await _ask(zg, network, stream, **extra)
        unpaid = zg.unpaid(network.provider)
        await zg.close(settle=False)
        return text, unpaid


async def _refused(
    network: Network, stream: bool, match: str, **extra: object
) -> tuple[int, Evidence]:
    """One request on a fresh account whose reply the SDK refuses with `match`: what the SDK
    owes the provider afterwards, and the evidence it kept."""
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        with pytest.raises(VerificationError, match=match):
            await _ask(zg, network, stream, **extra)
        return zg.unpaid(network.provider), (await zg.provider_state(network.provider)).evidence()


@pytest.mark.parametrize("stream", [False, True])
async def test_an_honest_reply_from_the_same_server_is_accepted(
    deployed: Network, dishonest: DishonestProvider, stream: bool
) -> None:
    text, unpaid = await _accepted(deployed, stream)
    assert text == "one two three"
    assert unpaid == 3 * OUTPUT_PRICE


@pytest.mark.parametrize("stream", [False, True])
async def test_a_price_raised_after_signing_is_not_paid(
    deployed: Network, dishonest: DishonestProvider, stream: bool
) -> None:
    """The provider raises its output price 1000x on chain between the request and the reply
    and charges the new price: the receipt is judged under the terms the request was signed
    under, and fails."""

    async def raise_then_charge(asked: Asked) -> Answer:
        raised = await deployed.reprice(output_price=1000 * OUTPUT_PRICE)
        return Answer("one two three", 3, 3 * raised.output_price)

    dishonest.behaviour = raise_then_charge
    unpaid, evidence = await _refused(
        deployed, stream, f"above 3 output units x {OUTPUT_PRICE} wei"
    )
    assert unpaid == 0
    [record] = evidence.records
    assert record.terms is not None
    assert record.terms.output_price == OUTPUT_PRICE
    assert [f.ok for f in verify_evidence(evidence)] == [False]


@pytest.mark.parametrize("stream", [False, True])
async def test_units_beyond_the_max_tokens_the_sdk_sent_are_refused(
    deployed: Network, dishonest: DishonestProvider, stream: bool
) -> None:
    """A two-word answer claiming a billion tokens: the SDK had sent its default max_tokens,
    and refuses anything above it."""

    async def overcount(asked: Asked) -> Answer:
        return Answer("two words", 10**9, 10**9 * OUTPUT_PRICE)

    dishonest.behaviour = overcount
    unpaid, _ = await _refused(deployed, stream, f"the request allows {Limits().max_tokens}")
    assert unpaid == 0
    [asked] = dishonest.asked
    assert asked.body["max_tokens"] == Limits().max_tokens


@pytest.mark.parametrize("stream", [False, True])
async def test_units_the_received_text_cannot_hold_are_refused(
    deployed: Network, dishonest: DishonestProvider, stream: bool
) -> None:
    """Within max_tokens, but 1,000 tokens for nine bytes of text: refused."""

    async def overcount(asked: Asked) -> Answer:
        return Answer("two words", 1000, 1000 * OUTPUT_PRICE)

    dishonest.behaviour = overcount
    unpaid, _ = await _refused(deployed, stream, "the received text holds at most")
    assert unpaid == 0


async def test_the_users_own_output_bound_is_sent_and_enforced(
    deployed: Network, dishonest: DishonestProvider
) -> None:
    async def charge_the_bound_plus_one(asked: Asked) -> Answer:
        bound = asked.body.get("max_completion_tokens") or asked.body["max_tokens"]
        return Answer("word " * 50, bound + 1, (bound + 1) * OUTPUT_PRICE)

    dishonest.behaviour = charge_the_bound_plus_one
    await _refused(deployed, False, "the request allows 7", max_completion_tokens=7)
    [asked] = dishonest.asked
    assert asked.body["max_completion_tokens"] == 7
    assert "max_tokens" not in asked.body


async def test_a_finished_stream_is_not_charged_as_an_abandoned_one(
    deployed: Network, dishonest: DishonestProvider
) -> None:
    """A two-word stream read to its `[DONE]`, without its receipt comment; the stored receipt
    (`GET .../signature/{id}`) covers a longer response the user never received and charges
    the whole `max_tokens`. Only an abandoned stream may be charged for bytes the SDK did not
    read: this one is refused, and its evidence fails offline."""

    async def charge_the_bound(asked: Asked) -> Answer:
        return Answer("two words", None, asked.body["max_tokens"] * OUTPUT_PRICE)

    dishonest.behaviour = charge_the_bound
    dishonest.stream_comment = False
    dishonest.stream_receipt_body = b'data: {"choices": [{"delta": {"content": "x"}}]}\n\n' * 999
    unpaid, evidence = await _refused(deployed, True, "other than the one delivered")
    assert unpaid == 0
    [record] = evidence.records
    assert not record.partial
    assert [f.ok for f in verify_evidence(evidence)] == [False]


@pytest.mark.parametrize("stream", [False, True])
async def test_empty_choices_added_to_a_reply_earn_no_slack(
    deployed: Network, dishonest: DishonestProvider, stream: bool
) -> None:
    """The user asks for one choice; the provider adds 29 empty ones and claims the slack of
    32 units each: 969 units (within the 1,024 bound) for nine bytes of text. Only the
    choices the request asked for (`n`) earn the slack: refused."""
    units = len("two words") + 32 * 30

    async def pad(asked: Asked) -> Answer:
        return Answer("two words", units, units * OUTPUT_PRICE)

    dishonest.behaviour = pad
    dishonest.extra_choices = 29
    unpaid, evidence = await _refused(deployed, stream, "the received text holds at most 41")
    assert unpaid == 0
    assert [f.ok for f in verify_evidence(evidence)] == [False]


async def test_the_choices_asked_for_earn_their_slack(
    deployed: Network, dishonest: DishonestProvider
) -> None:
    """With `n=3` three choices earn the slack (an honest reply of three short choices)."""
    units = len("two words") + 32 * 3

    async def three(asked: Asked) -> Answer:
        return Answer("two words", units, units * OUTPUT_PRICE)

    dishonest.behaviour = three
    dishonest.extra_choices = 2
    _, unpaid = await _accepted(deployed, False, n=3)
    assert unpaid == units * OUTPUT_PRICE


async def test_text_sent_after_done_is_not_charged(
    deployed: Network, dishonest: DishonestProvider
) -> None:
    """A stream of two words, `[DONE]`, then 900 bytes of text events and a usage of 900
    tokens: the openai client stops at `[DONE]` and the user never sees them. Only what comes
    before `[DONE]` counts: refused."""
    event = {"choices": [{"index": 0, "delta": {"content": "x" * 90}}]}
    padding = f"data: {json.dumps(event)}\n\n".encode() * 10
    dishonest.after_done = (
        padding + b'data: {"choices": [], "usage": {"completion_tokens": 900}}\n\n'
    )

    async def charge_the_padding(asked: Asked) -> Answer:
        return Answer("two words", None, 900 * OUTPUT_PRICE)

    dishonest.behaviour = charge_the_padding
    unpaid, evidence = await _refused(deployed, True, "the received text holds at most 41")
    assert unpaid == 0
    assert [f.ok for f in verify_evidence(evidence)] == [False]


def _stream_with_the_sync_client(network: Network) -> tuple[str, int, list[bool]]:
    with network.sync_stream(MESSAGES) as (zg, stream):
        with pytest.raises(VerificationError) as failed:
            "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        evidence = zg.aio._providers[network.provider].evidence()
        verdicts = [f.ok for f in verify_evidence(evidence)]
        unpaid = zg.unpaid(network.provider)
        return failed.value.reason, unpaid, verdicts


async def test_a_done_spelled_without_its_space_does_not_pass_for_an_abandoned_stream(
    deployed: Network, dishonest: DishonestProvider
) -> None:
    """`data:[DONE]` ends a stream for every SSE client (the sync openai client stops and
    closes there), but the SDK looked for `data: [DONE]`: the stream passed for one the user
    abandoned, and its stored receipt (over a longer response) was checked against the
    output bound only, so two words were charged `max_tokens`. Refused."""

    async def charge_the_bound(asked: Asked) -> Answer:
        return Answer("two words", None, asked.body["max_tokens"] * OUTPUT_PRICE)

    dishonest.behaviour = charge_the_bound
    dishonest.done_line = b"data:[DONE]"
    dishonest.stream_comment = False
    dishonest.stream_receipt_body = b'data: {"choices": [{"delta": {"content": "x"}}]}\n\n' * 999
    reason, unpaid, verdicts = await asyncio.to_thread(_stream_with_the_sync_client, deployed)
    assert "other than the one delivered" in reason
    assert unpaid == 0
    assert verdicts == [False]


async def test_a_plain_reply_to_a_stream_is_not_charged(
    deployed: Network, dishonest: DishonestProvider
) -> None:
    """The user asks to stream; the provider answers a plain JSON reply of 200 words with a
    usage of 1,000 tokens. The openai client reads it as a stream of no events: the user gets
    an empty reply. It was charged 1,000 units; now the receipt is refused."""

    async def big(asked: Asked) -> Answer:
        return Answer("word " * 200, 1000, 1000 * OUTPUT_PRICE)

    dishonest.behaviour = big
    dishonest.plain_for_streams = True
    unpaid, evidence = await _refused(deployed, True, "not in the form the request asked for")
    assert unpaid == 0
    assert [f.ok for f in verify_evidence(evidence)] == [False]


@pytest.mark.parametrize("stream", [False, True])
async def test_completion_text_hidden_in_a_chat_reply_is_not_charged(
    deployed: Network, dishonest: DishonestProvider, stream: bool
) -> None:
    """A chat reply of two words whose choice also carries a completions-style `text` of 900
    bytes, which no chat client shows, and a usage of 900 tokens: only the fields of the
    endpoint's own reply count. Refused."""

    async def charge_the_padding(asked: Asked) -> Answer:
        return Answer("two words", 900, 900 * OUTPUT_PRICE)

    dishonest.behaviour = charge_the_padding
    dishonest.choice_extra = {"text": "x" * 900}
    unpaid, _ = await _refused(deployed, stream, "the received text holds at most 41")
    assert unpaid == 0


async def test_a_reply_with_a_lone_surrogate_is_judged_not_a_crash(
    deployed: Network, dishonest: DishonestProvider
) -> None:
    """A reply escaping a lone surrogate (`\\ud800`, valid JSON) raised UnicodeEncodeError in
    the receipt check: no verdict, no evidence, the provider not stopped. Now it is judged;
    here it charges 1,000 units for a few bytes and is refused."""

    async def surrogate(asked: Asked) -> Answer:
        return Answer("\ud800 hi", 1000, 1000 * OUTPUT_PRICE)

    dishonest.behaviour = surrogate
    unpaid, _ = await _refused(deployed, False, "the received text holds at most 38")
    assert unpaid == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_nested_100000_deep_is_refused_before_any_parser_sees_it(
    deployed: Network, dishonest: DishonestProvider, stream: bool
) -> None:
    """100,000 nested brackets in a reply: py_ecc (imported with the SDK) raises the recursion
    limit to 100,000, so CPython's JSON parser overflowed the C stack and the user's process
    died (a segfault) in the receipt check or the openai client. The SDK measures the nesting
    first and stops the provider."""
    dishonest.raw_reply = b"[" * 100_000 + b"]" * 100_000
    unpaid, _ = await _refused(deployed, stream, "nests deeper than 256 levels")
    assert unpaid == 0
