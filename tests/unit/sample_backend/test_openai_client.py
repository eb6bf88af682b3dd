# SPDX-License-Identifier: Apache-2.0
"""The official `openai` client works against the backend (skipped where it is not installed)."""

from __future__ import annotations

import pytest

from tests.unit.sample_backend.conftest import CREATED, Client

openai = pytest.importorskip("openai")


async def test_openai_client_chat_stream_and_embeddings(backend: Client) -> None:
    base_url = str(backend.make_url("/v1"))
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        messages = [{"role": "user", "content": "hello there world"}]
        reply = await client.chat.completions.create(model="zg-demo-1", messages=messages)
        assert reply.created == CREATED
        assert reply.choices[0].finish_reason == "stop"
        assert reply.choices[0].message.content.endswith("hello there world")
        assert reply.usage is not None
        assert reply.usage.prompt_tokens == 3

        stream = await client.chat.completions.create(
            model="zg-demo-1",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=2,
        )
        pieces: list[str] = []
        usage = None
        async for chunk in stream:
            pieces.extend(c.delta.content or "" for c in chunk.choices)
            usage = chunk.usage or usage
        assert "".join(pieces) == "Sample reply"
        assert usage is not None
        assert usage.completion_tokens == 2

        completion = await client.completions.create(model="zg-demo-1", prompt="a b")
        assert completion.choices[0].text.endswith(": a b")

        # The client asks for base64 by default and decodes it itself.
        embeddings = await client.embeddings.create(model="zg-demo-1", input=["a", "b"])
        assert [len(e.embedding) for e in embeddings.data] == [8, 8]

        models = await client.models.list()
        assert [m.id for m in models.data] == ["zg-demo-1"]

        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="zg-demo-1", messages=[])
