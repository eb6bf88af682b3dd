# SPDX-License-Identifier: Apache-2.0
"""Gas used by each Serving contract function, measured on a local anvil node.

    .venv/bin/python bench/gas_report.py          # a table
    .venv/bin/python bench/gas_report.py --json   # for scripts

Every row is a real transaction's receipt, not an estimate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from eth_account import Account as EthAccount

from zg_shared.chain import (
    AnvilNode,
    DevChain,
    ServiceParams,
    ServingClient,
    TxResult,
    deploy_contract,
    load_artifact,
)

LOCK_TIME = 3600
SIGNER = (0x1234, 0x5678)


async def measure() -> list[tuple[str, int]]:
    rows: list[tuple[str, int]] = []

    def record(label: str, result: TxResult) -> None:
        rows.append((label, result.gas_used))

    async with AnvilNode(accounts=12) as node:
        w3 = node.web3()
        keys = [EthAccount.from_key(a.private_key) for a in node.accounts]
        chain = DevChain(w3)
        deployed = await deploy_contract(w3, keys[0], load_artifact("Serving"), LOCK_TIME, [])
        record("deploy Serving", deployed)
        assert deployed.contract_address is not None
        serving = ServingClient(w3, deployed.contract_address, keys[0])

        provider = serving.as_sender(keys[1])
        service = ServiceParams(
            name="chat",
            url="https://provider.example/v1",
            model="llama-3-8b",
            input_price=10**9,
            output_price=2 * 10**9,
            signer_address=keys[2].address,
        )
        record("addOrUpdateService (new)", await provider.add_or_update_service(service))
        updated = service.model_copy(update={"input_price": 2 * 10**9})
        record("addOrUpdateService (update)", await provider.add_or_update_service(updated))

        user = serving.as_sender(keys[5])
        info = "v1:" + "ab" * 60  # about the size of an encrypted signing key
        record(
            "addAccount (with deposit, 123-byte info)",
            await user.add_account(keys[1].address, SIGNER, info, value=10**18),
        )
        record("depositFund", await user.deposit_fund(keys[1].address, value=10**17))
        record("requestRefund (new refund)", await user.request_refund(keys[1].address, 10**16))
        record(
            "requestRefund (added to the open one)",
            await user.request_refund(keys[1].address, 10**16),
        )
        await chain.increase_time(LOCK_TIME)
        record("processRefund", await user.process_refund(keys[1].address, [0]))
        record(
            "requestRefund (new, after one paid)",
            await user.request_refund(keys[1].address, 10**16),
        )
        record(
            "rotateSigner (123-byte info)",
            await user.rotate_signer(keys[1].address, (SIGNER[0] + 1, SIGNER[1]), info),
        )
        record("removeService", await provider.remove_service("chat"))
        await w3.provider.disconnect()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    args = parser.parse_args()
    rows = asyncio.run(measure())
    if args.json:
        print(json.dumps([{"operation": op, "gas": gas} for op, gas in rows]))
        return 0
    width = max(len(op) for op, _ in rows)
    print(f"{'operation':<{width}}  {'gas':>9}")
    print(f"{'-' * width}  {'-' * 9}")
    for op, gas in rows:
        print(f"{op:<{width}}  {gas:>9,}")
    print(
        "\nsettleFees: measured with real proofs in bench/ once the settlement verifier is deployed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
