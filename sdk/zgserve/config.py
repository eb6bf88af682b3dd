# SPDX-License-Identifier: Apache-2.0
"""Where the SDK finds the chain, the contract and the wallet: arguments first, then the
environment, then the deployment file `zg-devnet` writes (`var/deployment.json`).

| setting | argument | environment | deployment file |
| --- | --- | --- | --- |
| RPC URL | `rpc_url` | `ZG_RPC_URL` | `rpc_url` |
| Serving contract | `contract` | `ZG_CONTRACT` | `serving` |
| wallet key | `wallet_key` | `ZG_PRIVATE_KEY` | never |
| gateway URL | `gateway_url` | `ZG_GATEWAY_URL` | none |
| state directory | `state_dir` | `ZG_HOME` (default `~/.zgserve`) | none |
| deployment file | `deployment` | `ZG_DEPLOYMENT` (default `var/deployment.json`) | |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zgserve.errors import ConfigError

DEFAULT_DEPLOYMENT = Path("var/deployment.json")


@dataclass(frozen=True)
class ZgConfig:
    rpc_url: str
    contract: str
    wallet_key: str | None = None
    gateway_url: str | None = None
    state_dir: Path | None = None

    def __repr__(self) -> str:  # never print the key
        key = "set" if self.wallet_key else "unset"
        return f"ZgConfig(rpc_url={self.rpc_url!r}, contract={self.contract!r}, wallet_key={key})"


def load_config(
    *,
    rpc_url: str | None = None,
    contract: str | None = None,
    wallet_key: str | None = None,
    gateway_url: str | None = None,
    state_dir: Path | None = None,
    deployment: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ZgConfig:
    env = os.environ if environ is None else environ
    deployed: dict[str, object] = {}
    path = deployment or Path(env.get("ZG_DEPLOYMENT", str(DEFAULT_DEPLOYMENT)))
    if path.exists():
        try:
            deployed = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    elif deployment is not None:
        raise ConfigError(f"no deployment file at {deployment}")
    rpc = rpc_url or env.get("ZG_RPC_URL") or _text(deployed.get("rpc_url"))
    serving = contract or env.get("ZG_CONTRACT") or _text(deployed.get("serving"))
    if not rpc:
        raise ConfigError("no RPC URL: pass --rpc-url, set ZG_RPC_URL, or run zg-devnet")
    if not serving:
        raise ConfigError("no contract address: pass --contract, set ZG_CONTRACT, or run zg-devnet")
    home = state_dir or (Path(env["ZG_HOME"]) if env.get("ZG_HOME") else None)
    return ZgConfig(
        rpc_url=rpc,
        contract=serving,
        wallet_key=wallet_key or env.get("ZG_PRIVATE_KEY") or None,
        gateway_url=gateway_url or env.get("ZG_GATEWAY_URL") or None,
        state_dir=home or Path.home() / ".zgserve",
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
