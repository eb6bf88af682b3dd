# SPDX-License-Identifier: Apache-2.0
"""Runs a local chain with the Serving contract deployed and a demo service registered.

    zg-devnet                 # start anvil, deploy, register, print, run until Ctrl-C
    zg-devnet --exit --json   # the same, print JSON and stop (for scripts and tests)
    zg-devnet --rpc-url URL --deployer-key KEY --provider-key KEY --receipt-signer ADDRESS
                              # deploy onto an existing node instead

The keys are anvil's well-known development keys: never use them on a real network. The
verifier it deploys is made from the committed single-party (dev) circuit keys, so it refuses
any chain but a local one (chain id 31337 or 1337), as it refuses well-known keys there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel

from zg_shared import devkeys
from zg_shared.chain.anvil import AnvilNode
from zg_shared.chain.artifacts import ContractArtifact, load_artifact
from zg_shared.chain.client import (
    MAX_LOCK_TIME_S,
    MIN_LOCK_TIME_S,
    ServingClient,
    connect,
    deploy_contract,
)
from zg_shared.chain.errors import ChainError
from zg_shared.chain.models import Service, ServiceParams
from zg_shared.chain.types import Web3Client
from zg_shared.zk.keys import verifier_artifacts

DEFAULT_LOCK_TIME = 24 * 3600
# The Groth16 verifier of the committed SettleBatch(4) keys (scripts/zk_setup.py).
COMMITTED_CIRCUIT_SIZE = 4
VERIFIER_ARTIFACT = "SettleBatchVerifier4"
VERIFIER_KEY_MANIFEST = (
    Path(__file__).resolve().parents[3] / "circuits" / "keys" / "settle_batch_4" / "manifest.json"
)


def refuse_dev_material(chain_id: int, keys: dict[str, str]) -> None:
    """The committed verifier's keys and anvil's keys are for local chains only."""
    devkeys.refuse_single_party_key_off_dev_chain(chain_id, VERIFIER_KEY_MANIFEST)
    devkeys.refuse_off_dev_chain(chain_id, keys)


class Deployment(BaseModel):
    """What a deployment produced; written to var/deployment.json for other local tools."""

    rpc_url: str
    chain_id: int
    serving: str
    verifiers: dict[int, str]
    """Circuit size N -> the verifier of SettleBatch(N) proofs that `serving` uses."""
    lock_time: int
    deployed_at_block: int
    provider: str
    services: list[Service]


DEMO_SERVICE = "demo-chat"


def demo_service(signer_address: str, service_url: str) -> ServiceParams:
    """The demo service, registered at `service_url`: the provider's gateway, where users are
    sent (the backend behind it stays private gateway configuration)."""
    return ServiceParams(
        name=DEMO_SERVICE,
        service_type="chatbot",
        url=service_url,
        model="zg-demo-1",
        verifiability="none",
        input_price=10**9,
        output_price=2 * 10**9,
        signer_address=signer_address,
    )


def committed_verifiers() -> dict[int, ContractArtifact]:
    """The verifier artifacts shipped with the package, by circuit size."""
    return {COMMITTED_CIRCUIT_SIZE: load_artifact(VERIFIER_ARTIFACT)}


async def deploy_verifiers(
    w3: Web3Client, deployer: LocalAccount, artifacts: Mapping[int, ContractArtifact]
) -> dict[int, str]:
    """Deploys one compiled verifier per circuit size, in the order given; their addresses."""
    deployed: dict[int, str] = {}
    for size, artifact in artifacts.items():
        result = await deploy_contract(w3, deployer, artifact)
        assert result.contract_address is not None
        deployed[size] = result.contract_address
    return deployed


async def deploy_network(
    w3: Web3Client,
    rpc_url: str,
    deployer: LocalAccount,
    provider: LocalAccount,
    response_signer: str,
    *,
    lock_time: int = DEFAULT_LOCK_TIME,
    service_url: str = "http://127.0.0.1:3080",
    verifiers: Mapping[int, ContractArtifact] | None = None,
) -> Deployment:
    """Deploys the verifiers (`verifiers`, by circuit size; the committed N=4 one by default),
    then `Serving` using them, and registers the demo service. The deployer's transactions
    are the verifiers in order, then `Serving` (fixed addresses on a fresh chain)."""
    addresses = await deploy_verifiers(w3, deployer, verifiers or committed_verifiers())
    serving = await ServingClient.deploy(w3, deployer, lock_time=lock_time, verifiers=addresses)
    block = await w3.eth.block_number
    provider_client = serving.as_sender(provider)
    await provider_client.add_or_update_service(demo_service(response_signer, service_url))
    return Deployment(
        rpc_url=rpc_url,
        chain_id=await w3.eth.chain_id,
        serving=serving.address,
        verifiers=await serving.verifiers(),
        lock_time=await serving.lock_time(),
        deployed_at_block=block,
        provider=provider.address,
        services=await serving.get_all_services(),
    )


def _print(deployment: Deployment, as_json: bool) -> None:
    if as_json:
        print(deployment.model_dump_json(indent=2))
        return
    print(f"chain        {deployment.rpc_url} (chain id {deployment.chain_id})")
    print(f"Serving      {deployment.serving} (block {deployment.deployed_at_block})")
    print(f"lock time    {deployment.lock_time} s")
    for size, verifier in sorted(deployment.verifiers.items()):
        print(f"verifier     N={size} at {verifier}")
    print(f"provider     {deployment.provider}")
    for s in deployment.services:
        print(
            f"service      {s.name}: {s.service_type} {s.model} at {s.url}, "
            f"input {s.input_price} wei/unit, output {s.output_price} wei/unit, "
            f"receipts signed by {s.signer_address}"
        )


async def _run(args: argparse.Namespace) -> int:
    async with contextlib.AsyncExitStack() as stack:
        if args.rpc_url:
            if not (args.deployer_key and args.provider_key and args.receipt_signer):
                print(
                    "error: --rpc-url needs --deployer-key, --provider-key and --receipt-signer",
                    file=sys.stderr,
                )
                return 2
            rpc_url = args.rpc_url
            deployer = EthAccount.from_key(args.deployer_key)
            provider = EthAccount.from_key(args.provider_key)
            response_signer = args.receipt_signer
        else:
            started = time.monotonic()
            print(f"starting anvil on port {args.port} ...", file=sys.stderr, flush=True)
            node = await stack.enter_async_context(AnvilNode(port=args.port))
            print(f"anvil ready in {time.monotonic() - started:.2f}s", file=sys.stderr, flush=True)
            rpc_url = node.rpc_url
            deployer = EthAccount.from_key(node.accounts[0].private_key)
            provider = EthAccount.from_key(node.accounts[1].private_key)
            response_signer = node.accounts[2].address
        w3 = connect(rpc_url)
        stack.push_async_callback(w3.provider.disconnect)
        try:
            refuse_dev_material(
                await w3.eth.chain_id,
                {"--deployer-key": deployer.key.hex(), "--provider-key": provider.key.hex()},
            )
        except devkeys.DevMaterialError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            deployment = await deploy_network(
                w3,
                rpc_url,
                deployer,
                provider,
                response_signer,
                lock_time=args.lock_time,
                service_url=args.service_url,
                verifiers=verifier_artifacts(args.circuit_size) if args.circuit_size else None,
            )
        except ChainError as exc:
            print(f"error: deployment failed: {exc}", file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(deployment.model_dump_json(indent=2))
        _print(deployment, args.json)
        if args.exit or args.rpc_url:
            return 0
        print("running; Ctrl-C stops the chain", file=sys.stderr, flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zg-devnet",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--port", type=int, default=8545, help="anvil's port (default 8545)")
    parser.add_argument("--rpc-url", help="deploy onto this node instead of starting anvil")
    parser.add_argument("--deployer-key", help="with --rpc-url: key that deploys")
    parser.add_argument(
        "--provider-key", help="with --rpc-url: key that registers the demo service"
    )
    parser.add_argument(
        "--receipt-signer",
        help="with --rpc-url: address of the gateway's receipt key, registered as the demo "
        "service's signer (a key of its own, not the provider's)",
    )
    parser.add_argument(
        "--lock-time",
        type=int,
        default=DEFAULT_LOCK_TIME,
        help=f"refund lock, seconds ({MIN_LOCK_TIME_S} to {MAX_LOCK_TIME_S})",
    )
    parser.add_argument(
        "--service-url",
        default="http://127.0.0.1:3080",
        help="the demo service's registered URL: the provider's gateway, which users reach",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("var/deployment.json"), help="where to write"
    )
    parser.add_argument(
        "--circuit-size",
        type=int,
        action="append",
        help="deploy the verifier of SettleBatch(N)'s keys (committed, else DEV keys made once "
        "on this machine); default: the committed N=4 one",
    )
    parser.add_argument("--json", action="store_true", help="print the deployment as JSON")
    parser.add_argument("--exit", action="store_true", help="stop after deploying")
    args = parser.parse_args(argv)
    if not MIN_LOCK_TIME_S <= args.lock_time <= MAX_LOCK_TIME_S:
        parser.error(f"--lock-time must be {MIN_LOCK_TIME_S} to {MAX_LOCK_TIME_S} seconds")
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
