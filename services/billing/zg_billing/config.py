# SPDX-License-Identifier: Apache-2.0
"""Billing settings, read from BILLING_* environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from zg_shared.settings import CircuitSizes, ServiceSettings


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore", frozen=True)

    provider_private_key: SecretStr = Field(
        description="The provider's wallet: settleFees pays whoever sends it"
    )
    circuit_sizes: CircuitSizes = Field(
        [64],
        min_length=1,
        description="The SettleBatch(N) sizes the provers have keys and the contract a verifier "
        "for, as JSON (e.g. [4, 16, 64]); each account's chunks use the cheapest mix "
        "(zg_billing.chunking)",
    )
    slot_gas: int = Field(
        5_000,
        ge=0,
        description="What proving one chunk slot is worth in gas, when choosing chunk sizes",
    )
    # Policy (docs/billing.md): settle an account when any of these holds.
    threshold_fee_wei: int = Field(
        10**15, ge=0, description="Settle once an account's unsettled fee reaches this"
    )
    max_age_lock_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Settle once the oldest unsettled request is this part of the lock time old",
    )
    sweep_interval_s: float = Field(
        3600.0, gt=0, description="Settle every account with anything unsettled this often"
    )
    settle_full_chunks: bool = Field(
        True,
        description="Settle an account once it holds a whole chunk of the largest size (its "
        "whole chunks only; the rest keeps filling)",
    )
    join_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="An account this part of the way to due (a chunk's requests, the age, the "
        "threshold) joins a settlement that goes out anyway; 0: never",
    )
    # Batching: several chunks of several users in one transaction keep gas per request low.
    max_chunks_per_user: int = Field(16, ge=1, description="Chunks one account may fill per batch")
    max_chunks_per_tx: int = Field(16, ge=1, description="Chunks one settleFees call carries")
    tick_s: float = Field(1.0, gt=0, description="How often the policy runs")
    # Retries and timeouts.
    proof_timeout_s: float = Field(600.0, gt=0, description="Re-prove if no proof comes by then")
    confirm_timeout_s: float = Field(
        300.0, gt=0, description="Re-check the chain if the indexer confirms nothing by then"
    )
    lease_ttl_s: float = Field(
        10.0,
        gt=0,
        description="Active/standby: the leader's lease lapses this long after its last "
        "renewal (every third of it); a standby takes over then",
    )
    max_attempts: int = Field(5, ge=1, description="Settlement attempts before backing off")
    retry_backoff_s: float = Field(30.0, gt=0, description="Wait after max_attempts failures")
    tx_timeout_s: float = Field(120.0, gt=0, description="How long to wait for a receipt")
    bump_after_s: float = Field(
        30.0, gt=0, description="Replace a settlement not mined by then with higher fees"
    )
    confirmations: int = Field(
        6,
        ge=0,
        description="Blocks a settlement must be buried under before billing confirms it from "
        "the chain itself, when the indexer's FeesSettled never came (the indexer's "
        "INDEXER_CONFIRMATIONS)",
    )
    durable_prefix: str = Field("billing", description="JetStream durable consumer names start so")
    settle_now_interval_s: float = Field(
        60.0,
        ge=0,
        description="Honour one SettleNow command (zg provider settle) per this many seconds: "
        "each settlement costs gas, so whoever reaches the bus cannot make billing spend it "
        "at will",
    )
    rebuild_check_s: float = Field(
        10.0, gt=0, description="How often to check whether Redis lost billing's state"
    )
