# SPDX-License-Identifier: Apache-2.0
"""Backend settings, read from SAMPLE_BACKEND_* environment variables.

This stands in for a third-party server (vLLM, llama.cpp, Ollama), so it deliberately does not
build on `zg_shared.settings.ServiceSettings`: it knows nothing of NATS, Redis or the chain.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BackendSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAMPLE_BACKEND_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Interface to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on")
    model: str = Field("zg-demo-1", min_length=1, description="The one model this server serves")
    created: int | None = Field(
        None, ge=0, description="Fixed `created` timestamp for reproducible output; None: now"
    )
    embedding_dim: int = Field(8, ge=1, le=4096, description="Length of each embedding vector")
    reply_words: int | None = Field(
        None, ge=1, description="Fixed reply length in words; None: template plus echoed words"
    )
    piece_chars: int | None = Field(
        None,
        ge=1,
        description="Tokens are pieces of at most this many characters (so a word spans several "
        "stream chunks, as with a subword tokenizer); None: one token per word",
    )
    # Latency knobs: benchmarks use them to look like a real model.
    first_token_latency_ms: float = Field(0.0, ge=0, description="Delay before the first token")
    token_latency_ms: float = Field(0.0, ge=0, description="Delay per generated token")
    # Failure injection, for tests of the gateway's error paths.
    fail_after_chunks: int | None = Field(
        None, ge=0, description="Close a stream's connection after this many SSE events"
    )
    status_override: int | None = Field(
        None, ge=400, le=599, description="Answer every /v1/ request with this error status"
    )
    # Behaviours of real engines that a gateway must survive (docs/gateway.md, "Real engines").
    stream_usage: bool = Field(
        True,
        description="False: streams never carry `usage`, whatever `stream_options.include_usage` "
        "asks (llama-cpp-python's server)",
    )
    honoured_bounds: Literal["both", "max_tokens", "none"] = Field(
        "both",
        description="Which output bounds it obeys: max_tokens and max_completion_tokens; only "
        "max_tokens (llama-cpp-python's chat ignores the newer name); none (an overrunning engine)",
    )
    early_done_after_chunks: int | None = Field(
        None,
        ge=0,
        description="Streams: send `data: [DONE]` after this many events, with no finish_reason "
        "(llama-cpp-python's `interrupt_requests` under concurrent requests)",
    )
    events_after_done: bool = Field(
        False,
        description="Streams: send the reply's events again after `[DONE]` (a misbehaving "
        "engine: no client reads past `[DONE]`, so nothing after it may be charged)",
    )
    error_after_chunks: int | None = Field(
        None, ge=0, description="Streams: fail after this many events, as `stream_error` says"
    )
    stream_error: Literal["event", "end"] = Field(
        "event",
        description="How a stream fails: `event`, an error event then [DONE] (vLLM); `end`, the "
        "body just ends, with no [DONE] (llama-cpp-python's server)",
    )
    drop_kept_alive: Literal["never", "after_failed_stream", "always"] = Field(
        "never",
        description="Drop, unanswered, a request that arrives on a kept-alive connection: "
        "one that served a failed stream, or any (a server closing idle connections as they "
        "are reused)",
    )
