# SPDX-License-Identifier: Apache-2.0
"""Settings every service shares; each service subclasses with its own env prefix.

    class ProverSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="PROVER_")

Only a service's `__main__` builds settings (reading the environment); everything else takes
them as an argument.

Secrets (private keys, passwords) are `SecretStr` fields: `repr(settings)`, logs and
tracebacks show `**********`, and only `.get_secret_value()` at the point of use reveals one.
Each setting is read, first match wins, from: the constructor's arguments, the environment
(`GATEWAY_RECEIPT_PRIVATE_KEY=...`), then a file of the same name in the secrets folder
(`/run/secrets/GATEWAY_RECEIPT_PRIVATE_KEY`: where compose mounts its secrets and where our
Kubernetes manifests mount the Secrets; `ZG_SECRETS_DIR` names another folder). Files are
what deployments should use for secrets: a process's environment is readable by more than
its files are (`/proc/PID/environ`, crash dumps, `docker inspect`).

ENVIRONMENT defaults to production: development and test are said explicitly (the local
network, compose's demo stack, the tests), so a forgotten variable fails closed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from zg_shared import devkeys
from zg_shared.bus import NatsAccess, nats_servers


def _sorted_positive_sizes(value: list[int]) -> list[int]:
    if any(n < 1 for n in value):
        raise ValueError("circuit sizes must be >= 1")
    return sorted(set(value))


# The SettleBatch(N) sizes a service works with: each >= 1, sorted, each once.
CircuitSizes = Annotated[list[int], AfterValidator(_sorted_positive_sizes)]

SECRETS_DIR_ENV = "ZG_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/run/secrets"
DEVELOPMENT_ENVIRONMENTS = frozenset({"development", "test"})
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def sentinel_addresses(sentinels: str) -> list[tuple[str, int]]:
    """`host:port,host:port` as (host, port) pairs."""
    addresses = []
    for part in (p.strip() for p in sentinels.split(",")):
        if not part:
            continue
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a sentinel is host:port, not {part!r}")
        addresses.append((host, int(port)))
    return addresses


def secrets_dir() -> Path:
    return Path(os.environ.get(SECRETS_DIR_ENV, DEFAULT_SECRETS_DIR))


class SecretSettings(BaseSettings):
    """Settings read from the arguments, the environment, then the secrets folder."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The secrets folder only where it exists: pydantic-settings warns about a missing one,
        # and a laptop has no /run/secrets.
        folder = secrets_dir()
        if not folder.is_dir():
            return (init_settings, env_settings, dotenv_settings)
        files = SecretsSettingsSource(settings_cls, secrets_dir=folder)
        return (init_settings, env_settings, dotenv_settings, files)


class NatsSettings(SecretSettings):
    """Where and as whom to connect to NATS: every service's, and the operators' tools'
    (`zg provider settle` reads them with the prefix `ZG_`)."""

    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        description="NATS server with JetStream; a cluster's servers separated by commas; "
        "tls:// or a CA file for TLS (no password in the URL: use nats_username and "
        "nats_password)",
    )
    nats_username: str = Field(
        "", description="This service's NATS user (deploy/k8s/base/nats/auth.conf)"
    )
    nats_password: SecretStr = Field(
        SecretStr(""), description="Its password: best from a file in the secrets folder"
    )
    nats_password_file: Path | None = Field(
        None, description="A file holding nats_password (one line), read when that is unset"
    )
    nats_ca_file: Path | None = Field(
        None, description="With TLS: the CA that signed the NATS server's certificate"
    )

    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, url: str) -> str:
        nats_servers(url)  # raises ValueError when it names no server
        return url

    @model_validator(mode="before")
    @classmethod
    def _password_from_its_file(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("nats_password_file")
            and not data.get("nats_password")
        ):
            data = {**data, "nats_password": read_secret_file(Path(data["nats_password_file"]))}
        return data

    def nats_access(self) -> NatsAccess:
        """Where and as whom this process connects to NATS."""
        return NatsAccess(
            url=self.nats_url,
            username=self.nats_username,
            password=self.nats_password,
            ca_file=self.nats_ca_file,
        )


def read_secret_file(path: Path) -> str:
    """A password file's one line (a trailing newline is not part of it). An unreadable file
    is a ValueError naming the path and why, never the content."""
    try:
        return path.read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ValueError(f"cannot read the password file {path}: {why}") from None


class ServiceSettings(NatsSettings):
    environment: str = Field("production", description="production | staging | development | test")
    nats_stream_replicas: int = Field(
        1,
        ge=1,
        le=5,
        description="Copies of each stream (and its consumers): 3 on a cluster. Read by the "
        "admin step that creates the streams (zg-bus-admin)",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis holding the fast views; rediss:// for TLS (no password in the URL: "
        "use redis_username and redis_password)",
    )
    redis_username: str = Field(
        "", description="This service's Redis ACL user (deploy/k8s/base/redis/users.acl)"
    )
    redis_password: SecretStr = Field(
        SecretStr(""), description="Its password: best from a file in the secrets folder"
    )
    redis_ca_file: Path | None = Field(
        None, description="With rediss://: the CA that signed the server's certificate"
    )
    redis_sentinels: str = Field(
        "",
        description="Sentinels as host:port, comma-separated: Redis is then the primary they "
        "name for redis_master_name, followed across a failover (redis_url gives only the "
        "scheme and database)",
    )
    redis_master_name: str = Field("zgserve", description="The primary's name at the sentinels")
    redis_sentinel_username: str = Field("", description="The sentinels' own login, if any")
    redis_sentinel_password: SecretStr = Field(
        SecretStr(""), description="Its password: best from a file in the secrets folder"
    )
    rpc_url: str = Field("http://127.0.0.1:8545", description="EVM JSON-RPC endpoint")
    serving_address: str = Field("", description="Address of the Serving contract")
    http_host: str = Field("127.0.0.1", description="Where /healthz, /readyz and /metrics listen")
    http_port: int = Field(0, description="Port for the HTTP endpoints; 0 picks a free one")
    log_level: str = "INFO"
    log_json: bool = Field(True, description="One JSON object per log line")

    @property
    def is_production(self) -> bool:
        return self.environment not in DEVELOPMENT_ENVIRONMENTS

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, sentinels: str) -> str:
        sentinel_addresses(sentinels)  # raises ValueError on a malformed one
        return sentinels

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if not url.startswith(REDIS_SCHEMES):
            raise ValueError(f"redis_url must start with one of {', '.join(REDIS_SCHEMES)}")
        return url

    def private_keys(self) -> dict[str, str | SecretStr]:
        """Every private key this service holds, by field name."""
        return devkeys.private_key_fields(self)

    @model_validator(mode="after")
    def _no_dev_keys_outside_development(self) -> Self:
        if self.is_production:
            found = devkeys.well_known_fields(self.private_keys())
            if found:
                raise ValueError(
                    f"{', '.join(found)} is a public development key: refused with "
                    f"ENVIRONMENT={self.environment}"
                )
        return self

    def check_chain(self, chain_id: int) -> None:
        """Called once the RPC node has told the chain id: raises devkeys.DevMaterialError if
        a well-known key would guard funds on a chain that is not a local one. Services with
        more to check (the gateway's receipt key) extend it."""
        devkeys.refuse_off_dev_chain(chain_id, self.private_keys())

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's `from_url` beside the URL: the ACL user and its
        password, and the CA for TLS."""
        options: dict[str, Any] = {}
        if self.redis_username:
            options["username"] = self.redis_username
        if self.redis_password.get_secret_value():
            options["password"] = self.redis_password.get_secret_value()
        if self.redis_ca_file is not None:
            options["ssl_ca_certs"] = str(self.redis_ca_file)
        return options
