# SPDX-License-Identifier: Apache-2.0
"""llama-cpp-python's server behind the gateway, used through the SDK and the official openai
client: chat, completions and embeddings served, verified and settled to the wei; and each way
this engine broke the gateway, first reproduced against the engine itself, then through the
gateway (docs/gateway.md, "Real engines")."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from redis.asyncio import Redis

from tests.integration.llama.conftest import (
    DEPOSIT,
    OUTPUT_PRICE,
    LlamaNetwork,
    User,
)
from tests.integration.llama.server import CHAT_MODEL, CONTEXT, EMBED_MODEL, LlamaServer
from tests.integration.polling import eventually
from zg_shared.accounts import AccountStore
from zg_shared.chain import FeesSettled
from zgserve import Evidence, verify_evidence

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python is not installed (scripts/setup.sh builds it once and caches the "
        "wheel; ZG_LLAMA=0 skips that step)",
        allow_module_level=True,
    )
pytestmark = pytest.mark.slow

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello world"}]
# Far more tokens than the model's context of 256.
TOO_LONG: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": " ".join(f"qz{i}" for i in range(300))}
]


async def direct(llama: LlamaServer, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """A request straight to the engine, as the gateway sends one."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{llama.url}/{path}", json=body) as response,
    ):
        return response.status, await response.read()


def events(raw: bytes) -> list[Any]:
    return [
        json.loads(line[5:])
        for line in raw.decode().splitlines()
        if line.startswith("data:") and line[5:].strip() != "[DONE]"
    ]


async def read_stream(stream: Any) -> tuple[str, list[str | None]]:
    """The text of choice 0 and every finish_reason seen."""
    text, finishes = "", []
    async for chunk in stream:
        for choice in chunk.choices:
            delta = getattr(choice, "delta", None)
            text += (delta.content if delta is not None else choice.text) or ""
            finishes.append(choice.finish_reason)
    return text, finishes


def owed(user: User, network: LlamaNetwork) -> int:
    return user.zg.unpaid(network.provider)


async def test_chat_completions_and_embeddings_plain_and_streamed(network: LlamaNetwork) -> None:
    async with network.user() as user:
        reply = await user.chat.chat.completions.create(
            model=CHAT_MODEL, messages=HELLO, max_tokens=12, seed=1
        )
        assert reply.usage is not None
        assert 1 <= reply.usage.completion_tokens <= 12
        assert owed(user, network) == reply.usage.completion_tokens * OUTPUT_PRICE

        stream = await user.chat.chat.completions.create(
            model=CHAT_MODEL, messages=HELLO, max_tokens=12, seed=2, stream=True
        )
        text, finishes = await read_stream(stream)
        assert finishes[-1] in ("length", "stop")
        assert owed(user, network) == len(text.split()) * OUTPUT_PRICE

        completion = await user.chat.completions.create(
            model=CHAT_MODEL, prompt="hello world", max_tokens=10, seed=3
        )
        assert completion.usage is not None
        assert owed(user, network) == completion.usage.completion_tokens * OUTPUT_PRICE
        completions = await user.chat.completions.create(
            model=CHAT_MODEL, prompt="hello world", max_tokens=10, seed=4, stream=True
        )
        text, finishes = await read_stream(completions)
        assert finishes[-1] in ("length", "stop")
        assert owed(user, network) == len(text.split()) * OUTPUT_PRICE

        # Embeddings from the mean-pooling copy, a service of its own.
        embedded = await user.embed.embeddings.create(
            model=EMBED_MODEL, input=["hello world", "tiny model"]
        )
        assert [len(e.embedding) for e in embedded.data] == [64, 64]
        assert owed(user, network) == 0  # the embeddings request paid the last output fee
        # Without a model name the engine serves its first model, which cannot embed; the
        # gateway fills in the service's registered model.
        status, _ = await direct(network.llama, "embeddings", {"input": "hello"})
        assert status != 200
        session = user.embed_session
        response = await session.http.post(f"{session.base_url}/embeddings", json={"input": "x"})
        assert response.status_code == 200, response.text


async def test_1_a_stream_without_usage_is_metered_by_words_of_its_joined_text(
    network: LlamaNetwork,
) -> None:
    # The engine ignores stream_options.include_usage: no chunk carries usage.
    status, raw = await direct(
        network.llama,
        "chat/completions",
        {
            "model": CHAT_MODEL,
            "messages": HELLO,
            "max_tokens": 40,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200
    chunks = events(raw)
    # Some chunks (how many is the sampler's: this unseeded noise model may stop early).
    assert chunks
    assert not any(chunk.get("usage") for chunk in chunks)

    async with network.user() as user:
        stream = await user.chat.chat.completions.create(
            model=CHAT_MODEL, messages=HELLO, max_tokens=40, seed=5, stream=True
        )
        text, _ = await read_stream(stream)
        # One token per chunk, several tokens per word: counting per chunk would charge
        # nearly one unit per token.
        assert owed(user, network) == len(text.split()) * OUTPUT_PRICE


async def test_2_max_completion_tokens_binds_an_engine_that_reads_only_max_tokens(
    network: LlamaNetwork,
) -> None:
    status, raw = await direct(
        network.llama,
        "chat/completions",
        {"model": CHAT_MODEL, "messages": HELLO, "max_completion_tokens": 5, "seed": 6},
    )
    assert status == 200
    assert json.loads(raw)["usage"]["completion_tokens"] > 5  # ignored by the engine

    async with network.user() as user:
        reply = await user.chat.chat.completions.create(
            model=CHAT_MODEL, messages=HELLO, max_completion_tokens=5, seed=6
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens <= 5
        assert owed(user, network) == reply.usage.completion_tokens * OUTPUT_PRICE


async def test_3_default_bounds_follow_the_api_and_the_declared_context(
    network: LlamaNetwork,
) -> None:
    async with network.user() as user:
        # OpenAI's default for /completions is 16 tokens (not the gateway's 1024, with which
        # this engine fails past its context of 256).
        completion = await user.chat.completions.create(model=CHAT_MODEL, prompt="hello", seed=7)
        assert completion.usage is not None
        assert completion.usage.completion_tokens <= 16
        # Chat has no API default: the declared context bounds it.
        for seed in range(3):
            reply = await user.chat.chat.completions.create(
                model=CHAT_MODEL, messages=HELLO, seed=seed
            )
            assert reply.usage is not None
            assert reply.usage.total_tokens <= CONTEXT


async def test_4_a_stream_the_engine_fails_raises_in_the_openai_client(
    network: LlamaNetwork,
) -> None:
    body = {"model": CHAT_MODEL, "messages": TOO_LONG, "max_tokens": 4, "stream": True}
    status, raw = await direct(network.llama, "chat/completions", body)
    assert (status, events(raw)) == (200, [])  # "200 OK" and nothing: no error, no [DONE]

    async with network.user() as user:
        stream = await user.chat.chat.completions.create(
            model=CHAT_MODEL, messages=TOO_LONG, max_tokens=4, stream=True
        )
        with pytest.raises(openai.APIError, match="broke off"):
            await read_stream(stream)
        assert owed(user, network) == 0
        # The plain request gets the engine's own 400, passed on.
        with pytest.raises(openai.BadRequestError, match="maximum context length is 256"):
            await user.chat.chat.completions.create(
                model=CHAT_MODEL, messages=TOO_LONG, max_tokens=4
            )


async def test_5_a_failed_stream_does_not_break_the_next_request(
    network: LlamaNetwork,
) -> None:
    # The engine may close the kept-alive connection after a failed stream (whether it has
    # by the next request is a race inside the engine); the gateway must not care.
    async with network.user() as user:
        for _ in range(3):
            stream = await user.chat.chat.completions.create(
                model=CHAT_MODEL, messages=TOO_LONG, max_tokens=4, stream=True
            )
            with pytest.raises(openai.APIError):
                await read_stream(stream)
            reply = await user.chat.chat.completions.create(
                model=CHAT_MODEL, messages=HELLO, max_tokens=2
            )
            assert reply.choices


TRIES = 3  # a stream the interrupting request reaches too late (a loaded machine) is tried again


async def test_6_a_stream_cut_by_an_early_done_is_not_charged(network: LlamaNetwork) -> None:
    """With `interrupt_requests` (the engine's default) a request that arrives while a stream
    is generating ends that stream: `[DONE]` with no finish_reason, then the body cut off."""
    long = {"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 200, "stream": True}
    short = {"model": CHAT_MODEL, "messages": HELLO, "max_tokens": 2}
    url = f"{network.llama.url}/chat/completions"
    for _ in range(TRIES):
        async with aiohttp.ClientSession() as http, http.post(url, json=long) as first:
            raw = await first.content.readline()  # generating
            assert (await direct(network.llama, "chat/completions", short))[0] == 200
            # Then [DONE] (mostly: it can be lost) and the body cut off, since the engine
            # cancels the stream's task.
            with contextlib.suppress(aiohttp.ClientPayloadError):
                async for line in first.content:
                    raw += line
        if not [c for c in events(raw) if c["choices"] and c["choices"][0]["finish_reason"]]:
            break
    else:
        pytest.fail(f"the engine finished the stream before the next request, {TRIES} times")

    async with network.user() as user:
        for _ in range(TRIES):
            before = owed(user, network)
            stream = await user.chat.chat.completions.create(
                model=CHAT_MODEL, messages=HELLO, max_tokens=200, stream=True
            )
            await anext(aiter(stream))  # generating
            reply = await user.chat.chat.completions.create(
                model=CHAT_MODEL, messages=HELLO, max_tokens=2
            )
            assert reply.usage is not None
            cut: openai.APIError | None = None
            try:
                await read_stream(stream)
            except openai.APIError as error:
                cut = error
            if cut is None:
                # The stream ended on its own before the reply's request reached the engine:
                # both were served, verified and charged; try again.
                assert owed(user, network) - before > reply.usage.completion_tokens * OUTPUT_PRICE
                continue
            assert re.search(r"unfinished|broke off", str(cut))
            # Only the plain reply is owed for: the cut stream was voided.
            assert owed(user, network) - before == reply.usage.completion_tokens * OUTPUT_PRICE
            break
        else:
            pytest.fail(f"no stream was cut by the next request in {TRIES} tries")


async def test_7_engine_errors_are_clear_and_other_models_refused(
    network: LlamaNetwork,
) -> None:
    status, raw = await direct(
        network.llama,
        "chat/completions",
        {"model": CHAT_MODEL, "messages": HELLO, "temperature": "hot"},
    )
    assert status == 500
    assert 'File \\"' in raw.decode()  # the engine's traceback, in its error message
    status, raw = await direct(
        network.llama, "chat/completions", {"model": "gpt-4", "messages": HELLO, "max_tokens": 2}
    )
    assert (status, json.loads(raw)["model"]) == (200, "gpt-4")  # served by its own model

    async with network.user() as user:
        with pytest.raises(openai.APIStatusError) as failed:
            await user.chat.chat.completions.create(
                model=CHAT_MODEL,
                messages=HELLO,
                extra_body={"temperature": "hot"},
            )
        assert failed.value.status_code == 502
        assert "File" not in failed.value.message
        assert "backend failed" in failed.value.message
        with pytest.raises(openai.NotFoundError, match="serves model 'zg-tiny-llama'"):
            await user.chat.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=2)
        assert owed(user, network) == 0


async def test_everything_served_is_settled_to_the_wei(network: LlamaNetwork) -> None:
    """Every user's signed fees, from the evidence the SDK kept (each receipt verified), are
    what the chain settled: no more, no less, and no voided request among them."""
    assert network.evidence, "run with the tests above"
    signed: dict[str, int] = {}
    last_nonce: dict[str, int] = {}
    for path in network.evidence:
        evidence = Evidence.read(path)
        assert all(finding.ok for finding in verify_evidence(evidence)), path
        signed[evidence.user] = sum(record.fee for record in evidence.records)
        last_nonce[evidence.user] = max((record.nonce for record in evidence.records), default=0)

    async def settled() -> dict[str, int]:
        found: dict[str, int] = {}
        for event in await network.serving.get_events(0, await network.w3.eth.block_number):
            if isinstance(event, FeesSettled):
                found[event.user] = found.get(event.user, 0) + event.amount
        return found

    async def all_settled() -> bool:
        return await settled() == {user: fee for user, fee in signed.items() if fee}

    await eventually(all_settled, within_s=240, what="every signed fee settled")
    redis = Redis.from_url(network.net.redis_url)
    try:
        for user, fee in signed.items():
            account = await network.serving.get_account(user, network.provider)
            assert account.balance == DEPOSIT - fee
            assert account.nonce == last_nonce[user]
            # And nothing is owed either way: every output fee was paid, nothing is reserved.
            state = await AccountStore(redis).read(user, network.provider)
            assert state is not None
            assert (state.output_debt, state.reserved) == (0, 0), user
    finally:
        await redis.aclose()
