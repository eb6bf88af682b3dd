# SPDX-License-Identifier: Apache-2.0
"""Where the time of one SettleBatch(N) proof goes: key loading, witness, MSMs, FFTs.

    .venv/bin/python bench/profile_proof.py --size 64 [--side-by-side 1 2]

groth16py's library is stripped (no symbols for a profiler), so the split inside a proof comes
from snarkjs, whose verbose log marks each phase of the same algorithm (the circuit's QAP: three
inverse and three forward FFTs over the domain, then five multi-exponentiations: A, B1 and C in
G1 over the wires, B2 in G2 over the wires, H in G1 over the domain); each phase is timed by
the arrival of its log line. That needs a snarkjs zkey (N=4 is committed; other sizes only where
a dev zkey was made). For the size asked, the arkworks rows time key loading, the native and
wasm witnesses and `prove_wtns` with k proofs at once for each `--side-by-side` k (threads
sharing one key in a fresh process, as a replica with PROVER_CONCURRENCY=k proves; groth16py
proves each on one thread), and the witness's scalar mix says how much of the MSMs' input is 0
or 1 (cheap scalars).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SNARKJS = ROOT / "node_modules" / "snarkjs" / "build" / "cli.cjs"
# snarkjs -v log lines that open a phase, and the phase they belong to.
PHASES = [
    (re.compile(r"Reading Wtns|Reading Coeffs|Building ABC|Join ABC"), "witness map (ABC)"),
    (re.compile(r"FFT_[ABC]|IFFT_[ABC]"), "FFTs (7 over the domain)"),
    (re.compile(r"multiexp B2"), "MSM B2 (G2, wires)"),
    (re.compile(r"multiexp H"), "MSM H (G1, domain)"),
    (re.compile(r"multiexp [A-Z0-9]+"), "MSMs A, B1, C (G1, wires)"),
]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(message: str) -> None:
    print(f"[profile] {message}", file=sys.stderr, flush=True)


def chunk_and_witness(n: int, workdir: Path) -> tuple[Any, Any, Path]:
    from sample_chunk import sample_chunk

    from zg_shared.zk.keys import ensure_keys
    from zg_shared.zk.witness import witness_generator

    keys = ensure_keys(n)
    chunk = sample_chunk(n)
    wtns = witness_generator(keys.build).calculate(chunk, workdir / "witness.wtns")
    return keys, chunk, wtns


def scalar_mix(wtns: Path) -> dict[str, float]:
    """Shares of witness values that are 0, 1, below 2^64, or full-size field elements."""
    data = wtns.read_bytes()
    (sections,) = struct.unpack_from("<I", data, 8)
    pos, values = 12, b""
    for _ in range(sections):
        kind, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if kind == 2:
            values = data[pos : pos + size]
        pos += size
    count = len(values) // 32
    zero = one = small = 0
    for i in range(count):
        v = int.from_bytes(values[32 * i : 32 * i + 32], "little")
        zero += v == 0
        one += v == 1
        small += 1 < v < 1 << 64
    return {
        "wires": count,
        "zero": zero / count,
        "one": one / count,
        "small": small / count,
        "full": (count - zero - one - small) / count,
    }


def snarkjs_phases(zkey: Path, wtns: Path, workdir: Path) -> dict[str, float]:
    """Seconds per phase of `snarkjs groth16 prove -v`, by when each phase's log line comes."""
    cmd = ["node", str(SNARKJS), "groth16", "prove", "-v", str(zkey), str(wtns)]
    cmd += [str(workdir / "proof.json"), str(workdir / "public.json")]
    spent: dict[str, float] = {}
    current, since = "node start, zkey header", time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = _ANSI.sub("", raw)
        phase = next((name for pattern, name in PHASES if pattern.search(line)), None)
        if phase is not None and phase != current:
            now = time.perf_counter()
            spent[current] = spent.get(current, 0.0) + now - since
            current, since = phase, now
    proc.wait()
    spent[current] = spent.get(current, 0.0) + time.perf_counter() - since
    return spent


def arkworks_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Key load, then for each k in `side_by_side`, k proofs at once (a thread each, one
    loaded key, as a replica with PROVER_CONCURRENCY=k proves), `reps` times: the best
    wall time and the CPU per proof."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    from zg_shared.zk.arkworks import ArkworksStep
    from zg_shared.zk.keys import find_keys

    keys = find_keys(int(spec["size"]))
    assert keys is not None
    t0 = time.perf_counter()
    step = ArkworksStep(keys)
    load_s = time.perf_counter() - t0
    import groth16py  # type: ignore[import-not-found, unused-ignore]

    def prove(_: int) -> None:
        groth16py.prove_wtns(step._pk, spec["wtns"])

    runs = {}
    for k in spec["side_by_side"]:
        walls, cpus = [], []
        for _ in range(int(spec["reps"])):
            before = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(k) as pool:
                list(pool.map(prove, range(k)))
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        runs[k] = {"wall_s": min(walls), "cpu_per_proof_s": min(cpus) / k}
    return {"load_s": load_s, "runs": runs}


def witness_times(keys: Any, chunk: Any, workdir: Path) -> dict[str, float]:
    import resource

    from zg_shared.zk.witness import NativeWitness, WasmWitness, WitnessGenerator

    found = {}
    generators: dict[str, WitnessGenerator] = {"wasm": WasmWitness(keys.build.wasm)}
    if keys.build.native_witness.is_file():
        generators["native"] = NativeWitness(keys.build.native_witness)
    for name, generator in generators.items():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        generator.calculate(chunk, workdir / f"{name}.wtns")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        found[name] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--side-by-side",
        type=int,
        nargs="+",
        default=[1, 2],
        help="proofs at once in one process (PROVER_CONCURRENCY), one run per value",
    )
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(arkworks_worker(json.loads(args.worker))))
        return 0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="zg-profile-") as tmp:
        workdir = Path(tmp)
        keys, chunk, wtns = chunk_and_witness(args.size, workdir)
        n = args.size
        print(f"SettleBatch({n}), {keys.describe()}")
        mix = scalar_mix(wtns)
        print(
            f"witness: {mix['wires']:,} values: 0 {mix['zero']:.1%}, 1 {mix['one']:.1%}, "
            f"other < 2^64 {mix['small']:.1%}, full-size {mix['full']:.1%}"
        )
        for name, cpu in witness_times(keys, chunk, workdir).items():
            print(f"witness {name:<6}  {cpu:6.2f} s CPU  ({cpu / n:.4f} s per request)")
        spec = {"size": n, "reps": args.reps, "wtns": str(wtns), "side_by_side": args.side_by_side}
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"arkworks key load {got['load_s']:.1f} s")
        for key, run in got["runs"].items():
            k, cpu = int(key), run["cpu_per_proof_s"]  # JSON made the keys strings
            print(
                f"arkworks {k} proof(s) side by side: {run['wall_s']:.2f} s wall, "
                f"{cpu:.2f} s CPU per proof ({cpu / n:.3f} s CPU and "
                f"{run['wall_s'] / (k * n):.3f} s wall per request)"
            )
        zkey = keys.key if keys.key_format == "zkey" else None
        if zkey is None:
            print("snarkjs phases: no zkey at this size (run with --size 4)")
        else:
            spent = snarkjs_phases(zkey, wtns, workdir)
            total = sum(spent.values())
            print(f"snarkjs groth16 prove phases ({total:.1f} s wall):")
            for phase, seconds in spent.items():
                print(f"  {phase:<26} {seconds:6.2f} s  {seconds / total:5.1%}")
    print(f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
