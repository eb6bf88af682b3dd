# SPDX-License-Identifier: Apache-2.0
"""Finding SettleBatch(N) keys in a checkout, for benches and devnets: the committed ones, a
snarkjs zkey cached by `scripts/zk_setup.py --size N`, or the groth16py DEV keys of
`scripts/zk_setup.py --size N --arkworks-dev` (single party: never for real funds).

Everything cached lives under `.cache/zk/settle_batch_N/` (gitignored); `ensure_*` runs the
setup script (cached, resumable, progress on stderr) when something is missing.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zg_shared.zk.snarkjs import REPO_ROOT, CircuitArtifacts

KeyFormat = Literal["zkey", "groth16py"]


@dataclass(frozen=True)
class KeySet:
    """Keys of one circuit size and where they came from."""

    size: int
    wasm: Path  # circom's witness generator
    key: Path  # a snarkjs zkey, or groth16py's saved proving key (key_format)
    vkey: Path  # verification_key.json
    verifier_sol: Path | None  # the Solidity verifier made from this key (None: committed)
    key_format: KeyFormat
    source: str  # e.g. "snarkjs zkey (committed)"

    @property
    def artifacts(self) -> CircuitArtifacts:
        return CircuitArtifacts(self.size, self.wasm, self.key, self.vkey)


def build_dir(n: int, root: Path = REPO_ROOT) -> Path:
    return root / ".cache" / "zk" / f"settle_batch_{n}"


def wasm_path(n: int, root: Path = REPO_ROOT) -> Path:
    return build_dir(n, root) / f"settle_batch_{n}_js" / f"settle_batch_{n}.wasm"


def r1cs_path(n: int, root: Path = REPO_ROOT) -> Path:
    return build_dir(n, root) / f"settle_batch_{n}.r1cs"


def snarkjs_keys(n: int, root: Path = REPO_ROOT) -> KeySet | None:
    """The committed zkey, else one cached by `zk_setup.py --size N`; None if neither."""
    committed = root / "circuits" / "keys" / f"settle_batch_{n}"
    zkey, vkey = committed / f"settle_batch_{n}.zkey", committed / "verification_key.json"
    if zkey.is_file() and vkey.is_file():
        return KeySet(n, wasm_path(n, root), zkey, vkey, None, "zkey", "snarkjs zkey (committed)")
    build = build_dir(n, root)
    zkey, vkey = build / f"settle_batch_{n}_final.zkey", build / "verification_key.json"
    sol = build / f"SettleBatchVerifier{n}.sol"
    if zkey.is_file() and vkey.is_file():
        return KeySet(n, wasm_path(n, root), zkey, vkey, sol, "zkey", "snarkjs zkey (dev, .cache)")
    return None


def arkworks_dev_keys(n: int, root: Path = REPO_ROOT) -> KeySet | None:
    folder = build_dir(n, root) / "arkworks"
    pk, vkey = folder / "proving_key.g16", folder / "verification_key.json"
    if pk.is_file() and vkey.is_file():
        sol = folder / f"SettleBatchVerifier{n}.sol"
        return KeySet(n, wasm_path(n, root), pk, vkey, sol, "groth16py", "groth16py DEV setup")
    return None


def run_setup(*args: str, root: Path = REPO_ROOT) -> None:
    """scripts/zk_setup.py ARGS, its progress lines on our stderr; raises if it fails."""
    cmd = [sys.executable, str(root / "scripts" / "zk_setup.py"), *args]
    print(f"[zk] running zk_setup.py {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=root, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/zk_setup.py {' '.join(args)} failed ({proc.returncode})")


def ensure_compiled(n: int, root: Path = REPO_ROOT) -> None:
    if not wasm_path(n, root).is_file() or not r1cs_path(n, root).is_file():
        run_setup("--size", str(n), "--compile-only", root=root)


def ensure_arkworks_dev_keys(n: int, root: Path = REPO_ROOT) -> KeySet:
    """The groth16py DEV keys, made when missing (~5 s at N=16, ~40 s at N=64 here)."""
    keys = arkworks_dev_keys(n, root)
    if keys is None:
        run_setup("--size", str(n), "--arkworks-dev", root=root)
        keys = arkworks_dev_keys(n, root)
    if keys is None:
        raise RuntimeError(f"zk_setup.py --arkworks-dev made no keys for N={n}")
    ensure_compiled(n, root)
    return keys
