# SPDX-License-Identifier: Apache-2.0
"""Chain-indexer settings, read from INDEXER_* environment variables."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from zg_shared.settings import ServiceSettings


class IndexerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INDEXER_", extra="ignore", frozen=True)

    confirmations: int = Field(
        6, ge=0, description="Blocks a log must be buried under before it is indexed (0: dev)"
    )
    poll_interval_s: float = Field(2.0, gt=0, description="Pause between polls once caught up")
    max_block_range: int = Field(
        500, ge=1, description="Most blocks read by one eth_getLogs (providers cap it)"
    )
    backoff_max_s: float = Field(
        30.0, gt=0, description="Longest pause between retries while RPC, NATS or Redis is down"
    )
    rpc_timeout_s: float = Field(10.0, gt=0, description="Timeout of one JSON-RPC request")
    reorg_window: int = Field(
        256, ge=1, description="Blocks of hashes and touched entries journaled for rollbacks"
    )
    settlements_kept: int = Field(
        100, ge=1, description="Confirmed settlements kept per account in Redis"
    )
    key_prefix: str = Field("zg:indexer", description="Redis prefix of the indexer's own keys")

    @model_validator(mode="after")
    def _needs_contract(self) -> Self:
        if not self.serving_address:
            raise ValueError("INDEXER_SERVING_ADDRESS is required: the Serving contract to follow")
        return self
