# SPDX-License-Identifier: Apache-2.0
"""Production keys for SettleBatch(N): a multi-party Groth16 phase 2 over a public phase 1.

    # coordinator: the operator's prepared powers of tau, checked against its published hash
    python scripts/ceremony.py init --size 64 --ptau powersOfTau28_hez_final_19.ptau \\
        --ptau-sha256 <published sha256> --dir ceremony/
    # each contributor in turn, on their own machine, with the folder passed along
    python scripts/ceremony.py contribute --dir ceremony/ --name "alice"
    # coordinator: a beacon announced in advance (e.g. a future block hash) closes phase 2
    python scripts/ceremony.py beacon --dir ceremony/ --beacon <hex>
    # coordinator: verify the whole chain, export the key and the verifier, install them
    python scripts/ceremony.py finish --dir ceremony/ --keys-dir /etc/zgserve/keys
    python scripts/zk_setup.py --size 64 --check --keys-dir /etc/zgserve/keys

The folder holds the zkeys and `ceremony.json` (the circuit's r1cs hash, the ptau's hash, every
contribution's name and hash as snarkjs printed it: publish it). Anyone can repeat `snarkjs zkey
verify r1cs ptau final.zkey`; one honest contributor is enough for soundness. The prover reads
the installed keys with PROVER_KEYS_DIR; the verifier (`SettleBatchVerifierN.sol` beside them)
is deployed with Serving. docs/circuit.md describes the whole path.

Exit codes: 0 ok, 1 a tool failed, 2 bad usage (a wrong hash, steps out of order).
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from zg_shared.scripts import script_module
from zg_shared.zk.circuit import sha256_file, zk_cache_dir

ROOT = Path(__file__).resolve().parent.parent
STATE = "ceremony.json"
# snarkjs prints the contribution hash as 4 lines of 4 hex words after this line.
_HASH = re.compile(r"Contribution Hash:\s*((?:\s*[0-9a-f]{8}){16})", re.IGNORECASE)


def _zk_setup() -> ModuleType:
    return script_module(ROOT / "scripts" / "zk_setup.py")


class CeremonyError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _load(folder: Path) -> dict[str, Any]:
    path = folder / STATE
    if not path.is_file():
        raise CeremonyError(f"{path} not found: run `ceremony.py init` first", 2)
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def _save(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / f"{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.rename(folder / STATE)


def _contribution_hash(output: str) -> str:
    found = _HASH.search(output)
    return " ".join(found.group(1).split()) if found else ""


def init(size: int, ptau: Path, ptau_sha256: str, folder: Path) -> dict[str, Any]:
    """Check the operator's ptau against its published hash, compile, `groth16 setup`."""
    zk = _zk_setup()
    if not ptau.is_file():
        raise CeremonyError(f"--ptau {ptau} not found", 2)
    actual = sha256_file(ptau)
    if actual != ptau_sha256.lower().removeprefix("0x"):
        raise CeremonyError(
            f"{ptau.name} has sha256 {actual}, not the published {ptau_sha256}: refusing it", 2
        )
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STATE).is_file():
        raise CeremonyError(f"{folder} already holds a ceremony", 2)
    log = zk.Progress()
    setup = zk.Setup(size, zk_cache_dir(), log)
    info = setup.compile(native=False)
    first = folder / f"settle_batch_{size}_0000.zkey"
    zk.run(zk.snarkjs("groth16", "setup", setup.r1cs, ptau, first), log, label="groth16 setup")
    state = {
        "size": size,
        "constraints": info.constraints,
        "r1cs_sha256": sha256_file(setup.r1cs),
        "ptau": {"file": str(ptau.resolve()), "sha256": actual},
        "zkey": first.name,
        "contributions": [],
        "beacon": None,
    }
    _save(folder, state)
    log(f"ready for contributions: {first}")
    return state


def contribute(folder: Path, name: str) -> str:
    """One contribution: the latest zkey, mixed with fresh randomness (snarkjs adds the OS's);
    returns the contribution hash to publish."""
    zk = _zk_setup()
    state = _load(folder)
    if state["beacon"] is not None:
        raise CeremonyError("the beacon closed this ceremony", 2)
    index = len(state["contributions"]) + 1
    current = folder / state["zkey"]
    nxt = folder / f"settle_batch_{state['size']}_{index:04d}.zkey"
    output = zk.run(
        zk.snarkjs(
            "zkey", "contribute", current, nxt, f"--name={name}", f"-e={secrets.token_hex(32)}"
        ),
        zk.Progress(),
        label=f"contribution #{index} ({name})",
    )
    digest = _contribution_hash(output)
    state["contributions"].append({"name": name, "zkey": nxt.name, "hash": digest})
    state["zkey"] = nxt.name
    _save(folder, state)
    print(f"contribution #{index} by {name}: {digest}")
    return digest


def beacon(folder: Path, value: str, iterations: int) -> None:
    zk = _zk_setup()
    state = _load(folder)
    if not state["contributions"]:
        raise CeremonyError("at least one contribution comes before the beacon", 2)
    if state["beacon"] is not None:
        raise CeremonyError("the beacon was applied already", 2)
    final = folder / f"settle_batch_{state['size']}_final.zkey"
    zk.run(
        zk.snarkjs(
            "zkey", "beacon", folder / state["zkey"], final, value, str(iterations), "-n=beacon"
        ),
        zk.Progress(),
        label="beacon",
    )
    state["beacon"] = {"value": value, "iterations": iterations}
    state["zkey"] = final.name
    _save(folder, state)


def finish(folder: Path, keys_dir: Path | None) -> int:
    """`zk_setup.py --ptau --zkey --install`: zkey verify (the circuit, the ptau and every
    contribution), export the key and the verifier, install them with a manifest."""
    state = _load(folder)
    if state["beacon"] is None:
        raise CeremonyError("close the ceremony with a beacon first", 2)
    ptau = Path(state["ptau"]["file"])
    if sha256_file(ptau) != state["ptau"]["sha256"]:
        raise CeremonyError(f"{ptau} changed since init", 2)
    args = ["--size", str(state["size"]), "--ptau", str(ptau)]
    args += ["--zkey", str(folder / state["zkey"]), "--install"]
    if keys_dir is not None:
        args += ["--keys-dir", str(keys_dir)]
    code: int = _zk_setup().main(args)
    if code == 0 and keys_dir is not None:
        shutil.copyfile(folder / STATE, keys_dir / f"settle_batch_{state['size']}" / STATE)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_init = commands.add_parser("init", help="check the ptau, compile, groth16 setup")
    p_init.add_argument("--size", "-n", type=int, required=True)
    p_init.add_argument("--ptau", type=Path, required=True, help="a prepared phase-1 ptau")
    p_init.add_argument("--ptau-sha256", required=True, help="its published sha256")
    p_init.add_argument("--dir", type=Path, required=True)
    p_contribute = commands.add_parser("contribute", help="add one contribution")
    p_contribute.add_argument("--dir", type=Path, required=True)
    p_contribute.add_argument("--name", required=True, help="the contributor, as published")
    p_beacon = commands.add_parser("beacon", help="close phase 2 with a public beacon")
    p_beacon.add_argument("--dir", type=Path, required=True)
    p_beacon.add_argument("--beacon", required=True, help="hex, announced before the ceremony")
    p_beacon.add_argument("--iterations", type=int, default=10, help="2^i hash rounds (10)")
    p_finish = commands.add_parser("finish", help="verify, export and install the keys")
    p_finish.add_argument("--dir", type=Path, required=True)
    p_finish.add_argument(
        "--keys-dir", type=Path, help="install here (PROVER_KEYS_DIR); default: the committed"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            if args.size < 1:
                parser.error("--size must be >= 1")
            init(args.size, args.ptau, args.ptau_sha256, args.dir)
        elif args.command == "contribute":
            contribute(args.dir, args.name)
        elif args.command == "beacon":
            if not re.fullmatch(r"(0x)?[0-9a-fA-F]{2,128}", args.beacon):
                parser.error("--beacon must be hex")
            if not 1 <= args.iterations <= 32:
                parser.error("--iterations must be 1..32")
            beacon(args.dir, args.beacon.removeprefix("0x"), args.iterations)
        else:
            return finish(args.dir, args.keys_dir)
    except CeremonyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except _zk_setup().SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
