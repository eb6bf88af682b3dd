# SPDX-License-Identifier: Apache-2.0
"""Development material that must never guard real funds, and how to recognise it.

- Private keys everyone knows: the accounts anvil and hardhat derive from their default
  mnemonic ("test test ... junk"). A key is compared as the key it is, not as the text it was
  written in: with or without `0x`, in any case, padded with blanks.
- Local chains: chain ids 31337 (anvil, hardhat) and 1337 (ganache, geth --dev). Only there
  may a well-known key or a single-party circuit key be used.
- Circuit keys from a single-party setup (scripts/zk_setup.py's dev ptau, or groth16py's
  `--arkworks-dev` keys): whoever ran the setup can forge proofs. Their manifest says so.

Services check twice: when settings are built (`ServiceSettings`: refused unless ENVIRONMENT
is development or test) and once the RPC node has told them the chain id
(`refuse_off_dev_chain`: refused on any chain but a local one, whatever ENVIRONMENT says).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coincurve import PrivateKey
from eth_account import Account as EthAccount
from eth_account.hdaccount import seed_from_mnemonic
from eth_account.hdaccount.deterministic import HDPath, derive_child_key
from pydantic import SecretStr

DEV_CHAIN_IDS = frozenset({31337, 1337})
DEV_MNEMONIC = "test test test test test test test test test test test junk"
# anvil derives 10 accounts by default, hardhat 20, our local network 20; tools let a developer
# ask for more. The first 1,000 cover any count in use (~20 ms, once per process).
DEV_ACCOUNTS = 1000
DEV_PARENT_PATH = "m/44'/60'/0'/0"  # account i is m/44'/60'/0'/0/i (BIP-44)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class DevMaterialError(ValueError):
    """Development keys where real funds could be at stake."""


@functools.cache
def well_known_keys() -> frozenset[bytes]:
    """The private keys of the default mnemonic's first DEV_ACCOUNTS accounts, as anvil and
    hardhat derive them. The parent node is derived once; each account is then BIP-32's
    non-hardened step (an HMAC of the parent's public key), not a walk from the root."""
    node = _hmac_sha512(b"Bitcoin seed", seed_from_mnemonic(DEV_MNEMONIC, ""))
    parent, chain_code = node[:32], node[32:]
    for step in HDPath(DEV_PARENT_PATH)._path:
        parent, chain_code = derive_child_key(parent, chain_code, step)
    public = PrivateKey(parent).public_key.format(compressed=True)
    found = set()
    for i in range(DEV_ACCOUNTS):
        digest = _hmac_sha512(chain_code, public + i.to_bytes(4, "big"))
        child = (int.from_bytes(digest[:32], "big") + int.from_bytes(parent, "big")) % SECP256K1_N
        found.add(child.to_bytes(32, "big"))
    return frozenset(found)


def _hmac_sha512(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha512).digest()


def _secret_text(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def parse_private_key(value: str | SecretStr) -> bytes | None:
    """The 32 key bytes that `value` spells, however it is written (0x or not, any case,
    blanks around it); None if it is no secp256k1 private key at all."""
    text = _secret_text(value).strip().lower().removeprefix("0x")
    if len(text) != 64:
        return None
    try:
        key = bytes.fromhex(text)
        return bytes(EthAccount.from_key(key).key)
    except ValueError:
        return None


def is_well_known_key(value: str | SecretStr) -> bool:
    key = parse_private_key(value)
    return key is not None and key in well_known_keys()


def private_key_fields(values: Iterable[tuple[str, Any]]) -> dict[str, str | SecretStr]:
    """The settings fields that hold a private key: by convention their names end so."""
    return {
        name: value
        for name, value in values
        if name.endswith("private_key") and isinstance(value, str | SecretStr)
    }


def well_known_fields(keys: Mapping[str, str | SecretStr]) -> list[str]:
    return [name for name, value in keys.items() if is_well_known_key(value)]


def is_dev_chain(chain_id: int) -> bool:
    return chain_id in DEV_CHAIN_IDS


def refuse_off_dev_chain(chain_id: int, keys: Mapping[str, str | SecretStr]) -> None:
    """Raises DevMaterialError when a well-known key is configured for a chain that is not a
    local one."""
    if is_dev_chain(chain_id):
        return
    found = well_known_fields(keys)
    if found:
        raise DevMaterialError(
            f"{', '.join(found)}: a public development key, refused on chain id {chain_id} "
            f"(only local chains {sorted(DEV_CHAIN_IDS)} accept them)"
        )


# ---------------------------------------------------------------------- circuit keys


def is_single_party_manifest(manifest: Mapping[str, Any]) -> bool:
    """True unless the manifest scripts/zk_setup.py wrote describes a ceremony: a phase-1 ptau
    from a public ceremony *and* a phase-2 zkey supplied by the operator (its contributions are
    recorded in the zkey, so the manifest's count is null). A dev ptau made on one machine,
    local phase-2 contributions (one machine knows all of them) and groth16py's
    `--arkworks-dev` keys are all single-party."""
    if "WARNING" in manifest or str(manifest.get("setup", "")).startswith("groth16py"):
        return True
    ptau, phase2 = manifest.get("ptau"), manifest.get("phase2")
    if not isinstance(ptau, Mapping) or not isinstance(phase2, Mapping):
        return True
    from_ceremony = str(ptau.get("source", "")).startswith("ceremony")
    return not (from_ceremony and phase2.get("contributions", 0) is None)


def is_single_party_key(manifest_path: Path) -> bool:
    """Reads the manifest beside a key; a key without one is treated as single-party."""
    if not manifest_path.is_file():
        return True
    return is_single_party_manifest(json.loads(manifest_path.read_text()))


def refuse_single_party_key_off_dev_chain(chain_id: int, manifest_path: Path) -> None:
    if not is_dev_chain(chain_id) and is_single_party_key(manifest_path):
        raise DevMaterialError(
            f"the circuit key described by {manifest_path} comes from a single-party setup "
            f"(whoever ran it can forge proofs): refused on chain id {chain_id}; production "
            "keys come from the ceremony path (docs/circuit.md)"
        )
