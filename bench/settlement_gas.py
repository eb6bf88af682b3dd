"""Gas per settled request: real proofs of the committed SettleBatch(4) circuit, settled on a
local anvil node, one chunk per call and several chunks (and users) per call.

    .venv/bin/python bench/settlement_gas.py [--json]

The Groth16 verifier's cost does not depend on N (the public inputs are always seven), so the
per-chunk cost measured at N=4 also gives the cost at larger N: the rows marked "projected"
divide it by N. Keys for N >= 16 come from a ceremony (docs/circuit.md), not from this bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass

from eth_account import Account as EthAccount

from zg_prover.backends import select_backend
from zg_prover.service import ProverService
from zg_shared.chain import (
    AnvilNode,
    ServingClient,
    SettlementProof,
    deploy_contract,
    load_artifact,
)
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.events import UserBatch
from zg_shared.zk import SignedRequest

N = 4


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


@dataclass(frozen=True)
class Row:
    case: str
    n: int
    chunks: int | None  # None: projected
    requests: int | None
    gas: int  # the call's gas, or per chunk when projected
    gas_per_request: int


async def measure() -> list[Row]:
    prover = ProverService(select_backend("auto", N))
    rows: list[Row] = []
    async with AnvilNode(accounts=12) as node:
        w3 = node.web3()
        keys = [EthAccount.from_key(a.private_key) for a in node.accounts]
        verifier = await deploy_contract(w3, keys[0], load_artifact(f"SettleBatchVerifier{N}"))
        assert verifier.contract_address is not None
        serving = await ServingClient.deploy(
            w3, keys[0], lock_time=3600, verifier=verifier.contract_address
        )
        provider = keys[1]
        users = keys[4:8]
        prvs = [generate_private_key() for _ in users]
        for user, prv in zip(users, prvs, strict=True):
            signer = prv2pub(prv).as_tuple()
            await serving.as_sender(user).add_account(provider.address, signer, value=10**18)
        settle = serving.as_sender(provider)
        next_nonce = dict.fromkeys(range(len(users)), 1)

        async def proofs_for(index: int, chunks: int) -> list[SettlementProof]:
            start = next_nonce[index]
            next_nonce[index] += chunks * N
            user = users[index].address
            made = await prover.prove_batch(
                provider.address, batch(user, provider.address, prvs[index], start, chunks * N)
            )
            return [p.calldata for p in made]

        cases = [
            ("1 chunk, 1 user", [(0, 1)]),
            ("4 chunks, 1 user", [(1, 4)]),
            ("4 chunks, 4 users", [(0, 1), (1, 1), (2, 1), (3, 1)]),
            ("8 chunks, 4 users", [(0, 2), (1, 2), (2, 2), (3, 2)]),
        ]
        for label, plan in cases:
            proofs: list[SettlementProof] = []
            for index, chunks in plan:
                proofs += await proofs_for(index, chunks)
            result = await settle.settle_fees(proofs)
            requests = len(proofs) * N
            rows.append(
                Row(label, N, len(proofs), requests, result.gas_used, result.gas_used // requests)
            )
        await w3.provider.disconnect()
    # The marginal cost of one more chunk (8-chunk call minus 4-chunk call), spread over N.
    four, eight = rows[-2], rows[-1]
    assert four.chunks is not None
    assert eight.chunks is not None
    per_chunk = (eight.gas - four.gas) // (eight.chunks - four.chunks)
    rows += [
        Row("projected, many chunks per call", n, None, None, per_chunk, per_chunk // n)
        for n in (16, 64, 256)
    ]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(measure())
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
        return 0
    print(f"{'case':<33} {'N':>4} {'chunks':>7} {'requests':>9} {'gas':>14} {'gas/request':>12}")
    for r in rows:
        chunks = "-" if r.chunks is None else str(r.chunks)
        requests = "-" if r.requests is None else str(r.requests)
        gas = f"{r.gas:,}/chunk" if r.chunks is None else f"{r.gas:,}"
        print(f"{r.case:<33} {r.n:>4} {chunks:>7} {requests:>9} {gas:>14} {r.gas_per_request:>12,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
