# SPDX-License-Identifier: Apache-2.0
"""Gas per settled request, measured: real SettleBatch(N) proofs settled by `Serving.settleFees`
on a local anvil node, for each N, one chunk per call and several chunks (and users) per call.

    .venv/bin/python bench/settlement_gas.py                 # N = 4, 16, 64
    .venv/bin/python bench/settlement_gas.py --sizes 4 --json

For each N: a fresh anvil, the N's own Solidity verifier (zg_shared/zk/solidity_verifier.py
rendered with that N's key) deployed beside a fresh `Serving`, four users with accounts at one
provider, then four
`settleFees` calls: 1 chunk of 1 user, 4 chunks of 1 user, 4 chunks of 4 users, 8 chunks of 4
users (`--cases small`, the default above N=64: 1, 2 and 3 chunks, one per user); every chunk
full (N requests). A row's gas is the transaction's `gasUsed` (21,000 base and calldata
included) divided by the requests it settled. "marginal" is the cost of one more chunk in a
call (the largest call minus the one before it, per extra chunk: a second chunk of a user in
the full cases, another user's chunk in the small ones) divided by N; "projected" rows apply
the largest marginal to sizes not measured (the verifier's cost does not depend on N: the
public inputs are always 7).

Keys: N=4 the committed ones (and the committed verifier artifact); larger N a snarkjs zkey
cached by `scripts/zk_setup.py --size N` if there is one, else DEV keys from
`scripts/zk_setup.py --size N --arkworks-dev` (made when missing, a minute or two). The verifier
is compiled into the key's .cache/zk folder, never into the committed artifacts. Proofs come
from groth16py (arkworks) when installed, else snarkjs. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account import Account as EthAccount

from zg_prover.backends import Prover, choose_backend
from zg_prover.service import ProverService
from zg_shared.chain import (
    AnvilNode,
    ContractArtifact,
    ServingClient,
    SettlementProof,
    deploy_contract,
    load_artifact,
)
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.events import UserBatch
from zg_shared.scripts import script_module
from zg_shared.zk import SignedRequest
from zg_shared.zk.keys import KeySet, ensure_keys

ROOT = Path(__file__).resolve().parent.parent

PROJECTED = (256,)
CASES: list[tuple[str, list[tuple[int, int]]]] = [
    # (label, [(user index, chunks of that user)])
    ("1 chunk, 1 user", [(0, 1)]),
    ("4 chunks, 1 user", [(1, 4)]),
    ("4 chunks, 4 users", [(0, 1), (1, 1), (2, 1), (3, 1)]),
    ("8 chunks, 4 users", [(0, 2), (1, 2), (2, 2), (3, 2)]),
]
# Fewer proofs, for large N (a proof at N=256 takes about a minute here).
SMALL_CASES: list[tuple[str, list[tuple[int, int]]]] = [
    ("1 chunk, 1 user", [(0, 1)]),
    ("2 chunks, 2 users", [(1, 1), (2, 1)]),
    ("3 chunks, 3 users", [(0, 1), (1, 1), (3, 1)]),
]


def log(message: str) -> None:
    print(f"[settlement_gas] {message}", file=sys.stderr, flush=True)


def compile_verifier(sol: Path, n: int) -> Path:
    """scripts/zk_setup.py's compile_verifier (scripts/ is not a package): cached artifact JSON."""
    return Path(script_module(ROOT / "scripts" / "zk_setup.py").compile_verifier(sol, n))


def batch(user: str, provider: str, prv: bytes, first: int, count: int) -> UserBatch:
    requests = tuple(
        SignedRequest.from_signature_hex(
            user=user,
            provider=provider,
            nonce=n,
            fee=1000,
            signature=sign_request(prv, user, provider, n, 1000).to_hex(),
        )
        for n in range(first, first + count)
    )
    return UserBatch(user=user, signer=prv2pub(prv).as_tuple(), requests=requests)


def bench_backend(keys: KeySet) -> Prover:
    """The service's prover over these keys (auto: arkworks where installed)."""
    return Prover(choose_backend("auto", [keys.key_format]), [keys])


def keys_and_verifier(n: int) -> tuple[KeySet, ContractArtifact]:
    """The keys to prove with and the verifier artifact made from the same key."""
    keys = ensure_keys(n)
    if keys.origin == "committed":  # the committed verifier artifact
        return keys, load_artifact(f"SettleBatchVerifier{n}")
    assert keys.verifier_sol is not None
    artifact = compile_verifier(keys.verifier_sol, n)
    return keys, load_artifact(f"SettleBatchVerifier{n}", artifact.parent)


@dataclass(frozen=True)
class Row:
    n: int
    case: str
    kind: str  # "measured", "marginal" or "projected"
    chunks: int | None
    users: int | None
    requests: int | None
    gas: int  # the call's gasUsed; per chunk for marginal/projected rows
    gas_per_request: int
    keys: str = ""


def cases_for(n: int, choice: str) -> list[tuple[str, list[tuple[int, int]]]]:
    if choice == "full" or (choice == "auto" and n <= 64):
        return CASES
    return SMALL_CASES


async def measure_size(
    n: int, cases: list[tuple[str, list[tuple[int, int]]]]
) -> tuple[list[Row], int]:
    """Rows for one N, and the verifier's deployment gas."""
    keys, verifier_artifact = keys_and_verifier(n)
    source = keys.describe()
    backend = bench_backend(keys)
    prover = ProverService(backend)
    log(f"N={n}: keys {source}, proving with {backend.name}")
    rows: list[Row] = []
    async with AnvilNode(accounts=12) as node:
        w3 = node.web3()
        accounts = [EthAccount.from_key(a.private_key) for a in node.accounts]
        verifier = await deploy_contract(w3, accounts[0], verifier_artifact)
        assert verifier.contract_address is not None
        serving = await ServingClient.deploy(
            w3, accounts[0], lock_time=3600, verifiers={n: verifier.contract_address}
        )
        provider = accounts[1]
        users = accounts[4:8]
        prvs = [generate_private_key() for _ in users]
        for user, prv in zip(users, prvs, strict=True):
            signer = prv2pub(prv).as_tuple()
            await serving.as_sender(user).add_account(provider.address, signer, value=10**18)
        settle = serving.as_sender(provider)
        next_nonce = dict.fromkeys(range(len(users)), 1)

        async def proofs_for(index: int, chunks: int) -> list[SettlementProof]:
            start = next_nonce[index]
            next_nonce[index] += chunks * n
            user = users[index].address
            made = await prover.prove_batch(
                provider.address, batch(user, provider.address, prvs[index], start, chunks * n), n
            )
            return [p.calldata for p in made]

        for label, plan in cases:
            log(f"N={n}: {label}: proving {sum(c for _, c in plan)} chunk(s) ...")
            proofs: list[SettlementProof] = []
            for index, chunks in plan:
                proofs += await proofs_for(index, chunks)
            result = await settle.settle_fees(proofs)
            requests = len(proofs) * n
            for index, _ in plan:  # the call really settled: nonces moved on chain
                account = await serving.get_account(users[index].address, provider.address)
                assert account.nonce == next_nonce[index] - 1, (account.nonce, next_nonce[index])
            row = Row(
                n,
                label,
                "measured",
                len(proofs),
                len(plan),
                requests,
                result.gas_used,
                result.gas_used // requests,
                source,
            )
            log(f"N={n}: {label}: {row.gas:,} gas, {row.gas_per_request:,} per request")
            rows.append(row)
        await w3.provider.disconnect()
    # The cost of one more chunk in a call: the two largest calls (both several users).
    smaller, larger = rows[-2], rows[-1]
    assert smaller.chunks is not None
    assert larger.chunks is not None
    per_chunk = (larger.gas - smaller.gas) // (larger.chunks - smaller.chunks)
    rows.append(
        Row(n, "marginal chunk in a call", "marginal", None, None, None, per_chunk, per_chunk // n)
    )
    return rows, verifier.gas_used


async def measure(sizes: list[int], cases: str) -> tuple[list[Row], dict[int, int]]:
    rows: list[Row] = []
    deploy: dict[int, int] = {}
    for n in sizes:
        size_rows, deploy[n] = await measure_size(n, cases_for(n, cases))
        rows += size_rows
    marginal = [r for r in rows if r.kind == "marginal"]
    per_chunk = max(r.gas for r in marginal)  # the most conservative of the measured sizes
    rows += [
        Row(
            n,
            "projected from the largest marginal",
            "projected",
            None,
            None,
            None,
            per_chunk,
            per_chunk // n,
        )
        for n in PROJECTED
        if n not in sizes
    ]
    return rows, deploy


def render(rows: list[Row], deploy: dict[int, int]) -> str:
    head = (
        f"{'N':>4} {'case':<36} {'chunks':>6} {'users':>5} {'requests':>8} {'gas':>16} "
        f"{'gas/req':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        gas = f"{r.gas:,}" if r.kind == "measured" else f"{r.gas:,}/chunk"
        lines.append(
            f"{r.n:>4} {r.case:<36} {r.chunks or '-':>6} {r.users or '-':>5} "
            f"{r.requests or '-':>8} {gas:>16} {r.gas_per_request:>8,}"
        )
    lines.append("")
    lines += [f"N={n}: verifier deployment {gas:,} gas" for n, gas in deploy.items()]
    sources = {r.n: r.keys for r in rows if r.keys}
    lines += [f"N={n}: keys {source}" for n, source in sources.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Gas per settled request, measured on anvil with real proofs, per N."
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64], metavar="N")
    parser.add_argument(
        "--cases",
        choices=["auto", "full", "small"],
        default="auto",
        help="full: 1, 4, 4 and 8 chunks per call (17 proofs); small: 1, 2 and 3 chunks "
        "(6 proofs); auto (default): full up to N=64, small above",
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    args = parser.parse_args(argv)
    rows, deploy = asyncio.run(measure(args.sizes, args.cases))
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows], "verifier_deploy_gas": deploy}))
    else:
        print(render(rows, deploy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
