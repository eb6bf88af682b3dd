# SPDX-License-Identifier: Apache-2.0
"""POST /v1/chat/completions, plain and streamed."""

from __future__ import annotations

from typing import Any

from tests.unit.sample_backend.conftest import CREATED, Client, StartBackend, sse_json

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hello there world"},
]
# "You are terse." + "hello there world"
PROMPT_TOKENS = 6


async def post_chat(client: Client, **body: Any) -> tuple[int, str]:
    async with client.post("/v1/chat/completions", json={"model": "zg-demo-1", **body}) as resp:
        return resp.status, await resp.text()


async def test_plain_reply_has_openai_shape(backend: Client) -> None:
    async with backend.post("/v1/chat/completions", json={"messages": MESSAGES}) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        reply = await resp.json()
    assert list(reply) == ["id", "object", "created", "model", "choices", "usage"]
    assert reply["id"].startswith("chatcmpl-")
    assert reply["object"] == "chat.completion"
    assert reply["created"] == CREATED
    assert reply["model"] == "zg-demo-1"
    [choice] = reply["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    assert content.startswith("Sample reply ")
    assert content.endswith(": hello there world")
    words = len(content.split())
    assert reply["usage"] == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": words,
        "total_tokens": PROMPT_TOKENS + words,
    }


async def test_same_request_same_bytes(backend: Client) -> None:
    first = await post_chat(backend, messages=MESSAGES)
    assert await post_chat(backend, messages=MESSAGES) == first
    other = await post_chat(backend, messages=[{"role": "user", "content": "something else"}])
    assert other[1] != first[1]


async def test_same_stream_same_bytes(backend: Client) -> None:
    body = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    assert await post_chat(backend, **body) == await post_chat(backend, **body)


async def test_the_model_answers_the_last_user_message(backend: Client) -> None:
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
    ]
    status, text = await post_chat(backend, messages=messages)
    assert status == 200
    assert '"content":"Sample reply ' in text
    assert ': second"' in text
    assert '"prompt_tokens":5,' in text


async def test_max_tokens_gives_length(backend: Client) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        async with backend.post(
            "/v1/chat/completions", json={"messages": MESSAGES, field: 2}
        ) as resp:
            reply = await resp.json()
        assert reply["choices"][0]["finish_reason"] == "length"
        assert reply["choices"][0]["message"]["content"] == "Sample reply"
        assert reply["usage"]["completion_tokens"] == 2


async def test_stream_sends_role_words_finish_usage_done(backend: Client) -> None:
    body = {
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 4,
    }
    async with backend.post("/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        chunks, last = sse_json(await resp.text())
    assert last == "[DONE]"
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1
    assert ids.pop().startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["created"] == CREATED and c["model"] == "zg-demo-1" for c in chunks)

    role, *words, finish, usage = chunks
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    deltas = [w["choices"][0]["delta"] for w in words]
    assert all(list(d) == ["content"] for d in deltas)
    text = "".join(d["content"] for d in deltas)
    assert text.startswith("Sample reply ")
    assert len(text.split()) == 4 == len(words)
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "length"
    # OpenAI: `usage: null` on every chunk but the last, which has no choices.
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": 4,
        "total_tokens": PROMPT_TOKENS + 4,
    }


async def test_stream_without_usage_has_no_usage_key(backend: Client) -> None:
    status, text = await post_chat(backend, messages=MESSAGES, stream=True)
    assert status == 200
    chunks, last = sse_json(text)
    assert last == "[DONE]"
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_text_equals_plain_text(backend: Client) -> None:
    _, plain = await post_chat(backend, messages=MESSAGES)
    _, streamed = await post_chat(backend, messages=MESSAGES, stream=True)
    chunks, _ = sse_json(streamed)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert f'"content":"{text}"' in plain


async def test_reply_words_setting(start_backend: StartBackend) -> None:
    client = await start_backend(reply_words=50, model="bench-model")
    async with client.post("/v1/chat/completions", json={"messages": MESSAGES}) as resp:
        reply = await resp.json()
    assert reply["model"] == "bench-model"
    assert reply["usage"]["completion_tokens"] == 50
