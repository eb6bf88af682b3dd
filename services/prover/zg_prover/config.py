# SPDX-License-Identifier: Apache-2.0
"""Prover settings, read from PROVER_* environment variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from zg_prover.backends import backend_names
from zg_shared.cpu import available_cpus
from zg_shared.settings import CircuitSizes, ServiceSettings


class ProverSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROVER_", extra="ignore", frozen=True)

    backend: str = Field(
        "auto",
        description="A backend of zg_prover.backends.BACKENDS, or auto: the fastest one installed",
    )
    circuit_sizes: CircuitSizes = Field(
        [64],
        min_length=1,
        description="The SettleBatch(N) sizes to load keys for, as JSON, e.g. [4, 64]",
    )
    keys_dir: Path | None = Field(
        None,
        description="A ceremony's keys (settle_batch_N/ folders from zk_setup.py --install "
        "--keys-dir); used before the committed and the DEV keys",
    )
    zk_cache: Path | None = Field(
        None,
        description="Where compiled circuits and DEV keys are cached; default $ZG_ZK_CACHE, "
        "else ~/.cache/zgserve/zk (zg_shared.zk.circuit)",
    )
    dev_keys: bool | None = Field(
        None,
        description="Allow single-party DEV keys made on this machine; default: only in "
        "development",
    )
    chain_id: int | None = Field(
        None,
        description="Chain id of the verifier that checks these proofs; unset: asked from "
        "rpc_url at start. Keys from a single-party setup are refused off local chains",
    )
    durable_name: str = Field(
        "prover", description="JetStream durable consumer name: one per pool, shared by replicas"
    )
    instance_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This replica's name in the pool, reported with its proofs",
    )
    heartbeat_s: float = Field(10.0, gt=0, description="In-progress acks while a proof runs")
    concurrency: int = Field(
        default_factory=available_cpus,
        ge=1,
        le=256,
        description="Chunks this replica proves at once, one core each (arkworks proves on one "
        "thread); default: the cores this process may use (affinity, capped by a cgroup CPU "
        "limit). Each holds a proof's working memory beside the one loaded key",
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in backend_names():
            raise ValueError(f"unknown prover backend {value!r}: one of {backend_names()}")
        return value

    @property
    def allow_dev_keys(self) -> bool:
        return self.dev_keys if self.dev_keys is not None else not self.is_production
