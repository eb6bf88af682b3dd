# SPDX-License-Identifier: Apache-2.0
"""Where the SDK finds the chain, the contract and the wallet, and what the user agrees to pay
at most: arguments first, then the environment, then the deployment file `zg-devnet` writes
(`var/deployment.json`).

| setting | argument | environment | deployment file |
| --- | --- | --- | --- |
| RPC URL | `rpc_url` | `ZG_RPC_URL` | `rpc_url` |
| Serving contract | `contract` | `ZG_CONTRACT` | `serving` |
| wallet key | `wallet_key` | `ZG_PRIVATE_KEY` | never |
| gateway URL override | `gateway_url` | `ZG_GATEWAY_URL` | none (the service's registered URL) |
| state directory | `state_dir` | `ZG_HOME` (default `~/.zgserve`) | none |
| deployment file | `deployment` | `ZG_DEPLOYMENT` (default `var/deployment.json`) | |
| ceilings (`Limits`) | `limits` | `ZG_MAX_INPUT_PRICE` and the others below | none |

The ceilings, each `ZG_` + the `Limits` field in capitals: `ZG_MAX_INPUT_PRICE`,
`ZG_MAX_OUTPUT_PRICE`, `ZG_MAX_REQUEST_FEE`, `ZG_MAX_DEBT` (amounts: wei or a unit, `1000`,
`2gwei`, `0.01eth`) and `ZG_MAX_TOKENS` (a count).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zgserve._amounts import AmountError, parse_amount
from zgserve.errors import ConfigError
from zgserve.terms import Limits

DEFAULT_DEPLOYMENT = Path("var/deployment.json")


@dataclass(frozen=True)
class ZgConfig:
    rpc_url: str
    contract: str
    wallet_key: str | None = None
    gateway_url: str | None = None
    state_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)

    def __repr__(self) -> str:  # never print the key
        key = "set" if self.wallet_key else "unset"
        return f"ZgConfig(rpc_url={self.rpc_url!r}, contract={self.contract!r}, wallet_key={key})"


def env_name(ceiling: str) -> str:
    """The environment variable of one `Limits` field."""
    return f"ZG_{ceiling.upper()}"


def load_limits(
    overrides: Mapping[str, int | None] | None = None, environ: Mapping[str, str] | None = None
) -> Limits:
    """`Limits` from `overrides` (None: not given), then `ZG_MAX_*`, then the defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for name in Limits.model_fields:
        given = (overrides or {}).get(name)
        if given is not None:
            values[name] = given
            continue
        text = env.get(env_name(name))
        if text:
            try:
                values[name] = parse_amount(text, allow_zero=name != "max_tokens")
            except AmountError as exc:
                raise ConfigError(f"{env_name(name)}: {exc}") from None
    return Limits(**values)


def load_config(
    *,
    rpc_url: str | None = None,
    contract: str | None = None,
    wallet_key: str | None = None,
    gateway_url: str | None = None,
    state_dir: Path | None = None,
    deployment: Path | None = None,
    limits: Mapping[str, int | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ZgConfig:
    env = os.environ if environ is None else environ
    deployed: dict[str, object] = {}
    path = deployment or Path(env.get("ZG_DEPLOYMENT") or DEFAULT_DEPLOYMENT)
    if path.is_dir():
        raise ConfigError(f"the deployment file {path} is a directory")
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{path} is not a readable JSON deployment file: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} is not a deployment file: expected a JSON object")
        deployed = loaded
    elif deployment is not None:
        raise ConfigError(f"no deployment file at {deployment}")
    rpc = rpc_url or env.get("ZG_RPC_URL") or _text(deployed.get("rpc_url"))
    serving = contract or env.get("ZG_CONTRACT") or _text(deployed.get("serving"))
    if not rpc:
        raise ConfigError("no RPC URL: pass --rpc-url, set ZG_RPC_URL, or run zg-devnet")
    if not rpc.startswith(("http://", "https://")):
        raise ConfigError(f"the RPC URL {rpc!r} is not an http(s) URL")
    if not serving:
        raise ConfigError("no contract address: pass --contract, set ZG_CONTRACT, or run zg-devnet")
    home = state_dir or (Path(env["ZG_HOME"]) if env.get("ZG_HOME") else None)
    return ZgConfig(
        rpc_url=rpc,
        contract=serving,
        wallet_key=wallet_key or env.get("ZG_PRIVATE_KEY") or None,
        gateway_url=gateway_url or env.get("ZG_GATEWAY_URL") or None,
        state_dir=home or Path.home() / ".zgserve",
        limits=load_limits(limits, env),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
