# SPDX-License-Identifier: Apache-2.0
"""Prover settings, read from PROVER_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from zg_shared.settings import ServiceSettings


class ProverSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROVER_", extra="ignore", frozen=True)

    backend: Literal["auto", "arkworks", "snarkjs"] = Field(
        "auto", description="auto picks the fastest installed backend (arkworks, else snarkjs)"
    )
    circuit_size: int = Field(4, ge=1, description="N of the SettleBatch(N) circuit and its keys")
    keys_root: Path | None = Field(
        None,
        description="Repository root holding circuits/keys and .cache/zk; default: this checkout",
    )
    chain_id: int | None = Field(
        None,
        description="Chain id of the verifier that checks these proofs; unset: asked from "
        "rpc_url at start. Keys from a single-party setup are refused off local chains",
    )
    durable_name: str = Field("prover", description="JetStream durable consumer name")
    heartbeat_s: float = Field(10.0, gt=0, description="In-progress acks while a proof runs")
