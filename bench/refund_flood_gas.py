# SPDX-License-Identifier: Apache-2.0
"""Gas of one settleFees chunk after a refund flood (issue 11 item 1), on a local anvil node.

    .venv/bin/python bench/refund_flood_gas.py                      # the committed contract
    .venv/bin/python bench/refund_flood_gas.py --artifacts DIR      # another build's Serving.json

Each user asks for `available - K` and then K refunds of 1 wei; the provider then settles one
chunk of 800 wei against 300 free, so 500 wei come out of the refunds. The verifier is the
test-only ConstantVerifier: the figures are settlement's bookkeeping, without the ~220k of
the pairing check. Compare an older build with
`git show REV:shared/zg_shared/chain/artifacts/Serving.json > DIR/Serving.json`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from eth_account import Account as EthAccount

from zg_shared.chain import AnvilNode, TransactionSender, deploy_contract, load_artifact
from zg_shared.chain.artifacts import ARTIFACT_DIR
from zg_shared.chain.errors import RevertDecoder

TEST_ARTIFACTS = Path(__file__).resolve().parent.parent / "tests" / "artifacts"
FLOODS = (0, 200, 1000)
SIGNER = [1, 2]


async def measure(artifacts: Path) -> dict[int, int]:
    gas: dict[int, int] = {}
    serving = load_artifact("Serving", artifacts)
    async with AnvilNode(accounts=2 + len(FLOODS)) as node:
        w3 = node.web3()
        keys = [EthAccount.from_key(a.private_key) for a in node.accounts]
        verifier = await deploy_contract(
            w3, keys[0], load_artifact("ConstantVerifier", TEST_ARTIFACTS), True
        )
        deployed = await deploy_contract(
            w3, keys[0], serving, 3600, [(4, verifier.contract_address)]
        )
        assert deployed.contract_address is not None
        contract = w3.eth.contract(address=deployed.contract_address, abi=serving.abi)
        provider = keys[1]

        async def send(sender: Any, fn: str, *args: Any, value: int = 0) -> int:
            data = contract.encode_abi(fn, args=list(args))
            tx = {"to": contract.address, "data": data, "value": value, "gas": 25_000_000}
            return (
                await TransactionSender(w3, sender, RevertDecoder(serving.abi)).send(tx)
            ).gas_used

        for user, flood in zip(keys[2:], FLOODS, strict=True):
            await send(user, "addAccount", provider.address, SIGNER, "", value=10_000)
            await send(user, "requestRefund", provider.address, 9_700 - flood)
            for _ in range(flood):
                await send(user, "requestRefund", provider.address, 1)
            inputs = [int(user.address, 16), int(provider.address, 16), 1, 4, 800, *SIGNER]
            proof = (4, [0, 0], [[0, 0], [0, 0]], [0, 0], inputs)
            gas[flood] = await send(provider, "settleFees", [proof])
        await w3.provider.disconnect()
    return gas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--artifacts", type=Path, default=ARTIFACT_DIR, help="folder of Serving.json"
    )
    args = parser.parse_args()
    for flood, gas in asyncio.run(measure(args.artifacts)).items():
        print(f"settleFees, one chunk, after 1 + {flood:>4} refund requests: {gas:>9,} gas")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
