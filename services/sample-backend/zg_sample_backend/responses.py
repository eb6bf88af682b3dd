# SPDX-License-Identifier: Apache-2.0
"""Builds OpenAI response bodies and stream events from the model's generations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from zg_sample_backend.model import Generation
from zg_sample_backend.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    Completion,
    CompletionChoice,
    Delta,
    Usage,
)
from zg_sample_backend.sse import Event


@dataclass(frozen=True)
class Meta:
    """What every object of one response shares."""

    id: str
    created: int
    model: str
    include_usage: bool = False


def _chunk_event(chunk: ChatCompletionChunk | Completion, meta: Meta, tokens: int = 0) -> Event:
    # With include_usage OpenAI puts `"usage": null` on every chunk but the last; else no key.
    exclude = None if meta.include_usage else {"usage"}
    return Event(chunk.model_dump_json(exclude=exclude), tokens)


def chat_completion(meta: Meta, generation: Generation, prompt_tokens: int) -> ChatCompletion:
    return ChatCompletion(
        id=meta.id,
        created=meta.created,
        model=meta.model,
        choices=[
            ChatChoice(
                index=0,
                message=AssistantMessage(content=generation.text),
                finish_reason=generation.finish_reason,
            )
        ],
        usage=Usage.of(prompt_tokens, generation.tokens),
    )


def chat_events(meta: Meta, generation: Generation, prompt_tokens: int) -> Iterator[Event]:
    """A role chunk, one chunk per token, a finishing chunk, then the usage chunk if asked."""

    def chunk(delta: Delta, finish: Generation | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(
            index=0, delta=delta, finish_reason=finish.finish_reason if finish else None
        )
        return ChatCompletionChunk(
            id=meta.id, created=meta.created, model=meta.model, choices=[choice]
        )

    yield _chunk_event(chunk(Delta(role="assistant", content="")), meta)
    for piece in generation.pieces:
        yield _chunk_event(chunk(Delta(content=piece)), meta, tokens=1)
    yield _chunk_event(chunk(Delta(), generation), meta)
    if meta.include_usage:
        usage = Usage.of(prompt_tokens, generation.tokens)
        final = ChatCompletionChunk(
            id=meta.id, created=meta.created, model=meta.model, choices=[], usage=usage
        )
        yield Event(final.model_dump_json())


def completion(meta: Meta, generations: list[Generation], prompt_tokens: int) -> Completion:
    choices = [
        CompletionChoice(text=g.text, index=i, finish_reason=g.finish_reason)
        for i, g in enumerate(generations)
    ]
    completion_tokens = sum(g.tokens for g in generations)
    return Completion(
        id=meta.id,
        created=meta.created,
        model=meta.model,
        choices=choices,
        usage=Usage.of(prompt_tokens, completion_tokens),
    )


def completion_events(
    meta: Meta, generations: list[Generation], prompt_tokens: int
) -> Iterator[Event]:
    """Per prompt in turn: one chunk per token, then one finishing chunk; usage last if asked."""

    def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> Completion:
        return Completion(
            id=meta.id, created=meta.created, model=meta.model, choices=choices, usage=usage
        )

    for index, generation in enumerate(generations):
        for piece in generation.pieces:
            choice = CompletionChoice(text=piece, index=index, finish_reason=None)
            yield _chunk_event(chunk([choice]), meta, tokens=1)
        finish = CompletionChoice(text="", index=index, finish_reason=generation.finish_reason)
        yield _chunk_event(chunk([finish]), meta)
    if meta.include_usage:
        completion_tokens = sum(g.tokens for g in generations)
        yield Event(chunk([], Usage.of(prompt_tokens, completion_tokens)).model_dump_json())
