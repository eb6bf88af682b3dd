# SPDX-License-Identifier: Apache-2.0
"""HTTP handlers: parse the request, ask the model, shape the answer the way OpenAI does."""

from __future__ import annotations

import time
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from zg_sample_backend import responses
from zg_sample_backend.config import BackendSettings
from zg_sample_backend.errors import OpenAIError
from zg_sample_backend.model import count_words, embed, embedding_base64, generate, request_id
from zg_sample_backend.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
)
from zg_sample_backend.sse import Pacer, stream_events

SETTINGS = web.AppKey("settings", BackendSettings)

RequestT = TypeVar("RequestT", bound=BaseModel)


def parse_body(model: type[RequestT], body: bytes) -> RequestT:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise OpenAIError(
                400, f"We could not parse the JSON body of your request: {first['msg']}"
            ) from exc
        where = ".".join(str(part) for part in first["loc"])
        param = str(first["loc"][0]) if first["loc"] else None
        raise OpenAIError(400, f"{where or 'body'}: {first['msg']}", param=param) from exc


def _created(settings: BackendSettings) -> int:
    return settings.created if settings.created is not None else int(time.time())


def _meta(
    settings: BackendSettings, prefix: str, body: bytes, include_usage: bool
) -> responses.Meta:
    return responses.Meta(
        request_id(prefix, body),
        _created(settings),
        settings.model,
        include_usage and settings.stream_usage,
    )


def _token_limit(
    settings: BackendSettings, max_tokens: int | None, newer: int | None
) -> int | None:
    """The output bound this engine obeys: OpenAI's newer `max_completion_tokens` wins over
    `max_tokens`, unless the `honoured_bounds` knob makes it ignore one or both."""
    if settings.honoured_bounds == "none":
        return None
    if settings.honoured_bounds == "max_tokens":
        return max_tokens
    return newer or max_tokens


def _json(model: BaseModel) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    body = await request.read()
    req = parse_body(ChatCompletionRequest, body)
    prompt_tokens = sum(count_words(m.text) for m in req.messages)
    limit = _token_limit(settings, req.max_tokens, req.max_completion_tokens)
    generation = generate(req.last_user_text, limit, settings.reply_words, settings.piece_chars)
    meta = _meta(settings, "chatcmpl", body, req.include_usage)
    if req.stream:
        events = responses.chat_events(meta, generation, prompt_tokens)
        return await stream_events(request, events, settings)
    await Pacer(settings).tokens(generation.tokens)
    return _json(responses.chat_completion(meta, generation, prompt_tokens))


async def completions(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    body = await request.read()
    req = parse_body(CompletionRequest, body)
    prompt_tokens = sum(count_words(p) for p in req.prompts)
    limit = _token_limit(settings, req.max_tokens, None)
    generations = [
        generate(p, limit, settings.reply_words, settings.piece_chars) for p in req.prompts
    ]
    meta = _meta(settings, "cmpl", body, req.include_usage)
    if req.stream:
        events = responses.completion_events(meta, generations, prompt_tokens)
        return await stream_events(request, events, settings)
    await Pacer(settings).tokens(sum(g.tokens for g in generations))
    return _json(responses.completion(meta, generations, prompt_tokens))


async def embeddings(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    req = parse_body(EmbeddingRequest, await request.read())
    dim = req.dimensions or settings.embedding_dim
    data: list[Embedding] = []
    for index, text in enumerate(req.inputs):
        vector = embed(text, dim)
        encoded = embedding_base64(vector) if req.encoding_format == "base64" else vector
        data.append(Embedding(index=index, embedding=encoded))
    tokens = sum(count_words(text) for text in req.inputs)
    usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
    return _json(EmbeddingList(data=data, model=settings.model, usage=usage))


def _model_card(settings: BackendSettings) -> ModelCard:
    return ModelCard(id=settings.model, created=_created(settings))


async def list_models(request: web.Request) -> web.Response:
    return _json(ModelList(data=[_model_card(request.app[SETTINGS])]))


async def get_model(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    name = request.match_info["model"]
    if name != settings.model:
        raise OpenAIError(
            404, f"The model '{name}' does not exist", param="model", code="model_not_found"
        )
    return _json(_model_card(settings))


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/healthz", healthz)
