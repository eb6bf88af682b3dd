# SPDX-License-Identifier: Apache-2.0
"""Backend settings, read from SAMPLE_BACKEND_* environment variables.

This stands in for a third-party server (vLLM, llama.cpp, Ollama), so it deliberately does not
build on `zg_shared.settings.ServiceSettings`: it knows nothing of NATS, Redis or the chain.
"""

from __future__ import annotations

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
