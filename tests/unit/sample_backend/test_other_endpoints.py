# SPDX-License-Identifier: Apache-2.0
"""POST /v1/completions and /v1/embeddings, GET /v1/models and /healthz."""

from __future__ import annotations

import base64
import struct

from tests.unit.sample_backend.conftest import CREATED, Client, StartBackend, sse_json


async def test_completion_plain(backend: Client) -> None:
    body = {"model": "zg-demo-1", "prompt": "Say this is a test", "max_tokens": 7}
    async with backend.post("/v1/completions", json=body) as resp:
        assert resp.status == 200
        reply = await resp.json()
    assert list(reply) == ["id", "object", "created", "model", "choices", "usage"]
    assert reply["id"].startswith("cmpl-")
    assert reply["object"] == "text_completion"
    assert reply["created"] == CREATED
    [choice] = reply["choices"]
    assert choice["index"] == 0
    assert choice["logprobs"] is None
    assert choice["finish_reason"] == "length"
    assert len(choice["text"].split()) == 7
    assert reply["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


async def test_completion_of_several_prompts_gives_one_choice_each(backend: Client) -> None:
    async with backend.post("/v1/completions", json={"prompt": ["a b", "c"]}) as resp:
        reply = await resp.json()
    assert [c["index"] for c in reply["choices"]] == [0, 1]
    assert [c["text"].split()[3:] for c in reply["choices"]] == [["a", "b"], ["c"]]
    assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}


async def test_completion_stream(backend: Client) -> None:
    body = {"prompt": "a b", "stream": True, "stream_options": {"include_usage": True}}
    async with backend.post("/v1/completions", json=body) as resp:
        assert resp.content_type == "text/event-stream"
        chunks, last = sse_json(await resp.text())
    assert last == "[DONE]"
    assert all(c["object"] == "text_completion" for c in chunks)
    *words, finish, usage = chunks
    text = "".join(w["choices"][0]["text"] for w in words)
    assert text.startswith("Sample reply ")
    assert text.endswith(": a b")
    assert all(w["choices"][0]["finish_reason"] is None for w in words)
    assert finish["choices"][0] == {
        "text": "",
        "index": 0,
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}


async def test_embeddings_shape_and_dimension(backend: Client) -> None:
    async with backend.post("/v1/embeddings", json={"input": ["one two", "three"]}) as resp:
        assert resp.status == 200
        reply = await resp.json()
    assert reply["object"] == "list"
    assert reply["model"] == "zg-demo-1"
    assert [d["object"] for d in reply["data"]] == ["embedding", "embedding"]
    assert [d["index"] for d in reply["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in reply["data"])
    assert reply["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


async def test_embeddings_are_deterministic(backend: Client) -> None:
    replies = []
    for _ in range(2):
        async with backend.post("/v1/embeddings", json={"input": "hello"}) as resp:
            replies.append(await resp.read())
    assert replies[0] == replies[1]
    async with backend.post("/v1/embeddings", json={"input": ["x", "hello"]}) as resp:
        both = await resp.json()
    async with backend.post("/v1/embeddings", json={"input": "hello"}) as resp:
        alone = await resp.json()
    assert both["data"][1]["embedding"] == alone["data"][0]["embedding"]


async def test_embedding_dimension_from_settings_and_request(start_backend: StartBackend) -> None:
    client = await start_backend(embedding_dim=3)
    async with client.post("/v1/embeddings", json={"input": "x"}) as resp:
        assert len((await resp.json())["data"][0]["embedding"]) == 3
    async with client.post("/v1/embeddings", json={"input": "x", "dimensions": 5}) as resp:
        assert len((await resp.json())["data"][0]["embedding"]) == 5


async def test_base64_embeddings_carry_the_same_floats(backend: Client) -> None:
    async with backend.post("/v1/embeddings", json={"input": "hi"}) as resp:
        floats = (await resp.json())["data"][0]["embedding"]
    body = {"input": "hi", "encoding_format": "base64"}
    async with backend.post("/v1/embeddings", json=body) as resp:
        encoded = (await resp.json())["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == floats


async def test_models(backend: Client) -> None:
    async with backend.get("/v1/models") as resp:
        assert await resp.json() == {
            "object": "list",
            "data": [
                {"id": "zg-demo-1", "object": "model", "created": CREATED, "owned_by": "zgserve"}
            ],
        }
    async with backend.get("/v1/models/zg-demo-1") as resp:
        assert (await resp.json())["id"] == "zg-demo-1"
    async with backend.get("/v1/models/other") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "model_not_found"


async def test_healthz(backend: Client) -> None:
    async with backend.get("/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}
