# SPDX-License-Identifier: Apache-2.0
"""Gateway settings, read from GATEWAY_* environment variables."""

from __future__ import annotations

from functools import cached_property
from typing import Literal, Self

from eth_account import Account as EthAccount
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from zg_gateway.clients import Network, parse_networks
from zg_shared import devkeys
from zg_shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    http_port: int = Field(3080, description="Where users reach the gateway")
    health_port: int = Field(
        9100,
        ge=0,
        description="Where /healthz, /readyz and /metrics listen (worker 0): an internal port, "
        "never the public one",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes sharing the port (SO_REUSEPORT); one per core to use",
    )
    worker_index: int = Field(0, ge=0, description="Set by the parent for each worker; not by hand")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto",
        description="auto: uvloop when installed (the optional `gateway-fast` extra), else asyncio",
    )
    provider_address: str = Field(
        description="The provider's address: accounts are (user, provider)"
    )
    receipt_private_key: SecretStr = Field(
        description="Signs response receipts; its address is the services' registered "
        "signerAddress. Not the provider's wallet key: a key of its own (docs/security.md)"
    )
    previous_receipt_private_key: SecretStr | None = Field(
        None,
        description="During a rotation of the receipt key: the key it replaces. Each receipt "
        "is signed with whichever of the two a service registers on chain (as last read), so "
        "the switch happens when the chain names the new one (docs/operations.md)",
    )
    backends: dict[str, str] = Field(
        default_factory=dict,
        description="Service name -> backend base URL (e.g. http://vllm:8000/v1): the services "
        "this gateway serves, and the only backends it calls (the URL registered on chain is "
        "the gateway's own public one; a service not listed gets 404)",
    )
    model_context_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="Service name -> its model's context window in tokens: the output bound "
        "reserved (and sent) when a request sets none stays within it",
    )
    redis_max_connections: int = Field(128, description="Redis connections this process may open")
    redis_wait_replicas: int = Field(
        0,
        ge=0,
        description="Replicas that must hold a finished request (its booking and served event) "
        "before its receipt goes out (Redis WAIT): 1 with Sentinel, so a failover loses no fee",
    )
    redis_wait_timeout_ms: int = Field(
        100, ge=1, description="How long a finish waits for them; then it goes on, logged"
    )
    max_body_bytes: int = Field(1 << 20, description="Larger request bodies get 413")
    default_max_output_units: int = Field(
        1024, description="Output bound reserved (and sent as max_tokens) when a request sets none"
    )
    debt_bound_wei: int = Field(
        10**16, description="Unpaid output fees an account may owe before requests get 402"
    )
    refund_margin_lock_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A fee-only request may pay from a pending refund that unlocks more than "
        "this part of the lock time from now (the next settlement lands before it unlocks)",
    )
    rate_limit_per_s: float = Field(50.0, description="Requests per second per user; 0 disables")
    rate_limit_burst: int = Field(100, description="Requests a user may send at once")
    chain_reads_per_client_s: float = Field(
        10.0,
        description="Chain reads per second that requests from one client address may cause "
        "before their signature is checked (an unknown account or service); 0 disables",
    )
    chain_reads_burst: int = Field(100, description="Such chain reads a client may cause at once")
    trusted_proxies: str = Field(
        "",
        description="Proxies in front of the gateway (CIDRs or addresses, comma-separated) whose "
        "X-Forwarded-For names the client for the per-client budgets; none: the peer's address",
    )
    backend_timeout_s: float = Field(
        300.0,
        description="How long a request may wait for the backend, in all (a stream: the time "
        "spent waiting for the backend, not for the user to read)",
    )
    client_stall_s: float = Field(
        60.0,
        gt=0,
        description="How long, in all, a stream may wait for the user to read what it relays; "
        "then it ends as a hang-up, charged for what was relayed (a user who stops reading "
        "must not run out the backend's timeout and have the stream voided)",
    )
    stale_after_s: float = Field(
        900.0, description="An unfinished request older than this is voided, whoever holds it"
    )
    alive_ttl_s: float = Field(
        30.0,
        gt=0,
        description="A gateway process's heartbeat lasts this long (renewed every third of "
        "it); the requests of one silent for longer are voided by the others' sweepers, and "
        "the outbox entries it was publishing are published by the others",
    )
    sweep_every_s: float = Field(
        10.0,
        gt=0,
        description="How often worker 0 sweeps stale requests, and every worker's outbox "
        "looks for a dead process's entries",
    )
    price_rise_grace_s: float = Field(
        30.0,
        ge=0,
        description="A price raised on chain is charged only this long after the gateway first "
        "reads it (the old, lower one until then; a drop applies at once): users' SDKs read "
        "the terms every 5 s and refuse receipts above the terms they signed under",
    )
    receipt_ttl_s: int = Field(7 * 24 * 3600, description="How long receipts stay fetchable")

    @model_validator(mode="after")
    def _requests_end_before_they_are_swept(self) -> Self:
        """A request still being served when the sweeper voids it is served for free: every
        request must end (backend and user waits both spent) before `stale_after_s`."""
        if self.stale_after_s <= self.backend_timeout_s + self.client_stall_s:
            raise ValueError(
                f"GATEWAY_STALE_AFTER_S ({self.stale_after_s:g}) must exceed "
                f"GATEWAY_BACKEND_TIMEOUT_S + GATEWAY_CLIENT_STALL_S "
                f"({self.backend_timeout_s + self.client_stall_s:g}): a request still being "
                "served would be voided"
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @cached_property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    def check_chain(self, chain_id: int) -> None:
        """Beyond the shared check: off a local chain the receipt key must not be the
        provider's wallet key, which a gateway compromise would then hand over with it."""
        super().check_chain(chain_id)
        if devkeys.is_dev_chain(chain_id):
            return
        for name, key in (
            ("GATEWAY_RECEIPT_PRIVATE_KEY", self.receipt_private_key),
            ("GATEWAY_PREVIOUS_RECEIPT_PRIVATE_KEY", self.previous_receipt_private_key),
        ):
            if key is None:
                continue
            signer = EthAccount.from_key(key.get_secret_value()).address
            if signer.lower() == self.provider_address.lower():
                raise devkeys.DevMaterialError(
                    f"{name} is the provider's own key ({signer}): refused on chain id "
                    f"{chain_id}; give the gateway a receipt key of its own"
                )
