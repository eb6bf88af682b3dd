"""Settings every service shares; each service subclasses with its own env prefix.

    class ProverSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="PROVER_")

Only a service's `__main__` builds settings (reading the environment); everything else takes
them as an argument.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Anvil's first dev key: fine on a laptop chain, refused anywhere else (see below).
DEV_PRIVATE_KEYS = frozenset(
    {
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    }
)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: str = Field("development", description="development | staging | production")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server with JetStream")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis holding the fast views")
    rpc_url: str = Field("http://127.0.0.1:8545", description="EVM JSON-RPC endpoint")
    serving_address: str = Field("", description="Address of the Serving contract")
    http_host: str = Field("127.0.0.1", description="Where /healthz, /readyz and /metrics listen")
    http_port: int = Field(0, description="Port for the HTTP endpoints; 0 picks a free one")
    log_level: str = "INFO"
    log_json: bool = Field(True, description="One JSON object per log line")

    @property
    def is_production(self) -> bool:
        return self.environment not in {"development", "test"}

    @model_validator(mode="after")
    def _no_dev_keys_outside_development(self) -> Self:
        if self.is_production:
            for name, value in self:
                if name.endswith("private_key") and str(value).lower() in DEV_PRIVATE_KEYS:
                    raise ValueError(
                        f"{name} is a public development key: refused in {self.environment}"
                    )
        return self
