# SPDX-License-Identifier: Apache-2.0
"""SettleBatch(N) key sets and where they come from.

- **ceremony**: an operator's folder (`<dir>/settle_batch_N/`, written by
  `scripts/zk_setup.py --install --keys-dir DIR` after a multi-party phase 2);
- **committed**: `circuits/keys/settle_batch_N/` (N=4, dev keys for the tests);
- **dev**: single-party keys made on this machine by `scripts/zk_setup.py --size N
  --arkworks-dev` (groth16py) or `--size N` (a dev snarkjs zkey), kept in the circuit's cache
  folder (`zg_shared.zk.circuit`). Whoever made them can forge proofs: never for real funds,
  and everything that uses them says so (`KeySet.dev`, `KeySet.describe()`).

Every key set records the r1cs it was made for; `check_circuit` compares it with the compiled
circuit, so keys of another circuit version are refused before a proof is attempted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zg_shared.chain.artifacts import ContractArtifact, load_artifact
from zg_shared.zk.circuit import REPO_ROOT, CircuitBuild

KeyFormat = Literal["zkey", "groth16py"]
KeyOrigin = Literal["ceremony", "committed", "dev"]
DEV_WARNING = "DEV keys (single-party setup on this machine): never for real funds"


class KeyMismatch(RuntimeError):
    """The keys were made for another circuit than the one compiled here."""


@dataclass(frozen=True)
class KeySet:
    """Keys of one circuit size, the compiled circuit they belong to, and their origin."""

    size: int
    build: CircuitBuild
    key: Path  # a snarkjs zkey, or groth16py's saved proving key (key_format)
    vkey: Path  # verification_key.json (snarkjs format)
    key_format: KeyFormat
    origin: KeyOrigin
    manifest: Path | None
    verifier_sol: Path | None  # the Solidity verifier made from this key

    @property
    def dev(self) -> bool:
        return self.origin != "ceremony"

    def describe(self) -> str:
        kind = {"ceremony": "ceremony keys", "committed": "committed test keys"}.get(
            self.origin, DEV_WARNING
        )
        if self.origin == "committed":
            kind += f" ({DEV_WARNING})"
        return f"SettleBatch({self.size}) {self.key_format} key, {kind}: {self.key}"

    def missing(self) -> list[Path]:
        return [p for p in (self.build.wasm, self.key, self.vkey) if not p.is_file()]

    def recorded_r1cs(self) -> str | None:
        if self.manifest is None or not self.manifest.is_file():
            return None
        value = json.loads(self.manifest.read_text()).get("r1cs_sha256")
        return str(value) if value else None

    def check_circuit(self) -> None:
        """Raises KeyMismatch unless the keys' manifest names the compiled r1cs."""
        compiled, recorded = self.build.r1cs_sha256, self.recorded_r1cs()
        if compiled is None:
            raise KeyMismatch(
                f"SettleBatch({self.size}) is not compiled in {self.build.folder}: "
                f"run scripts/zk_setup.py --size {self.size} --compile-only"
            )
        if recorded != compiled:
            raise KeyMismatch(
                f"{self.key} was made for r1cs {str(recorded)[:12]}, the compiled circuit is "
                f"{compiled[:12]}: make the keys again (scripts/zk_setup.py)"
            )


def _folder_keys(
    n: int, folder: Path, origin: KeyOrigin, build: CircuitBuild, verifier: Path | None
) -> KeySet | None:
    zkey, vkey = folder / f"settle_batch_{n}.zkey", folder / "verification_key.json"
    if not (zkey.is_file() and vkey.is_file()):
        return None
    return KeySet(n, build, zkey, vkey, "zkey", origin, folder / "manifest.json", verifier)


def ceremony_keys(n: int, keys_dir: Path, build: CircuitBuild) -> KeySet | None:
    folder = keys_dir / f"settle_batch_{n}"
    return _folder_keys(n, folder, "ceremony", build, folder / f"SettleBatchVerifier{n}.sol")


def committed_keys(n: int, build: CircuitBuild, root: Path = REPO_ROOT) -> KeySet | None:
    verifier = root / "contracts" / "src" / "verifiers" / f"SettleBatchVerifier{n}.sol"
    folder = root / "circuits" / "keys" / f"settle_batch_{n}"
    return _folder_keys(n, folder, "committed", build, verifier)


def dev_keys(n: int, build: CircuitBuild) -> KeySet | None:
    """A dev snarkjs zkey where one was made (it proves faster), else groth16py DEV keys."""
    zkey = build.folder / f"settle_batch_{n}_final.zkey"
    vkey, sol = build.folder / "verification_key.json", build.folder / f"SettleBatchVerifier{n}.sol"
    if zkey.is_file() and vkey.is_file():
        return KeySet(n, build, zkey, vkey, "zkey", "dev", build.stamp, sol)
    folder = build.dev_keys
    pk, vkey = folder / "proving_key.g16", folder / "verification_key.json"
    if pk.is_file() and vkey.is_file():
        sol = folder / f"SettleBatchVerifier{n}.sol"
        return KeySet(n, build, pk, vkey, "groth16py", "dev", folder / "manifest.json", sol)
    return None


def find_keys(
    n: int,
    *,
    root: Path = REPO_ROOT,
    cache: Path | None = None,
    keys_dir: Path | None = None,
    allow_dev: bool = True,
) -> KeySet | None:
    """The keys to prove SettleBatch(n) with: an operator's ceremony keys, else the committed
    ones, else (when allowed) DEV keys made on this machine."""
    build = CircuitBuild.current(n, root, cache)
    found = ceremony_keys(n, keys_dir, build) if keys_dir is not None else None
    found = found or committed_keys(n, build, root)
    if found is None and allow_dev:
        found = dev_keys(n, build)
    return found


def run_setup(*args: str, root: Path = REPO_ROOT) -> None:
    """scripts/zk_setup.py ARGS with its progress lines on our stderr; raises if it fails."""
    cmd = [sys.executable, str(root / "scripts" / "zk_setup.py"), *args]
    print(f"[zk] scripts/zk_setup.py {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=root, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/zk_setup.py {' '.join(args)} failed ({proc.returncode})")


def ensure_compiled(n: int, root: Path = REPO_ROOT) -> CircuitBuild:
    build = CircuitBuild.current(n, root)
    if not build.compiled or not build.native_witness.is_file():
        run_setup("--size", str(n), "--compile-only", root=root)
    return build


def ensure_dev_keys(n: int, root: Path = REPO_ROOT, *, verifier_artifact: bool = False) -> KeySet:
    """groth16py DEV keys for SettleBatch(n), made when missing (once per machine and circuit
    version: ~1-2 min at N=64 on 2 cores, cached outside the repository; progress on stderr),
    checked against the compiled circuit. `verifier_artifact`: also the compiled verifier
    (`verifier_sol` with a .json suffix) for deploying it."""
    build = ensure_compiled(n, root)
    keys = dev_keys(n, build)
    if (
        keys is None
        or keys.key_format != "groth16py"
        or (verifier_artifact and not _artifact(keys))
    ):
        args = ["--size", str(n), "--arkworks-dev"]
        run_setup(*args, *(["--verifier-artifact"] if verifier_artifact else []), root=root)
        keys = KeySet(
            n,
            build,
            build.dev_keys / "proving_key.g16",
            build.dev_keys / "verification_key.json",
            "groth16py",
            "dev",
            build.dev_keys / "manifest.json",
            build.dev_keys / f"SettleBatchVerifier{n}.sol",
        )
    if keys.missing():
        raise RuntimeError(f"scripts/zk_setup.py made no DEV keys for N={n}: {keys.missing()}")
    keys.check_circuit()
    return keys


def ensure_keys(n: int, root: Path = REPO_ROOT) -> KeySet:
    """Keys for SettleBatch(n): the committed (or already cached) ones, else DEV keys made now."""
    ensure_compiled(n, root)
    keys = find_keys(n, root=root)
    if keys is None:
        return ensure_dev_keys(n, root)
    keys.check_circuit()
    return keys


def _artifact(keys: KeySet) -> bool:
    return keys.verifier_sol is not None and keys.verifier_sol.with_suffix(".json").is_file()


def verifier_artifacts(
    sizes: Iterable[int], progress: Callable[[str], None] | None = None
) -> dict[int, ContractArtifact]:
    """The compiled verifier of each size's keys, to deploy beside Serving: the committed one,
    or the one made with the DEV keys (made now where missing: once per machine)."""
    found: dict[int, ContractArtifact] = {}
    for n in sizes:
        keys = find_keys(n)
        if keys is not None and keys.origin == "committed":
            found[n] = load_artifact(f"SettleBatchVerifier{n}")
            continue
        if progress is not None:
            progress(f"SettleBatch({n}): {DEV_WARNING}; made once, then reused")
        keys = ensure_dev_keys(n, verifier_artifact=True)
        assert keys.verifier_sol is not None
        found[n] = load_artifact(f"SettleBatchVerifier{n}", keys.verifier_sol.parent)
    return found
