# SPDX-License-Identifier: Apache-2.0
"""The compose stack's one-shot deploy job: contracts onto the compose chain, once.

Waits for the chain's JSON-RPC, then deploys the settlement verifier and `Serving` and registers
the demo service with `zg-devnet --rpc-url ...` -- unless `Serving` already has code at the
expected address (anvil keeps its state on a volume, so a restarted stack skips this).

On a fresh anvil the deployer's first two transactions always create the same addresses, so the
services' compose environment names `Serving` directly; this job fails if the address differs
(for example because something else sent transactions from the deployer first).

Keys come from the environment (`ZG_DEPLOYER_PRIVATE_KEY`, `ZG_PROVIDER_PRIVATE_KEY`), with the
address of the gateway's receipt key (`ZG_RECEIPT_SIGNER_ADDRESS`, registered as the demo
service's signer: a key of its own, never the provider's); compose defaults them to anvil's
public development accounts 0, 1 and 2. zg-devnet refuses them, and the committed dev verifier,
on any chain but a local one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from zg_shared.chain import devnet

# Environment variables this job reads (the compose env-var test checks compose against them).
KEY_VARS = ("ZG_DEPLOYER_PRIVATE_KEY", "ZG_PROVIDER_PRIVATE_KEY", "ZG_RECEIPT_SIGNER_ADDRESS")
# ZG_CIRCUIT_SIZES (JSON, default [64]): whose verifier to deploy; ZG_ZK_CACHE: where the
# circuit and its DEV keys were made (the zk-dev-keys job's volume; zg_shared.zk.circuit).
ENV_VARS = (*KEY_VARS, "ZG_CIRCUIT_SIZES", "ZG_ZK_CACHE")
# Anvil's deployer (account 0) at nonce 1: the verifier is nonce 0, Serving nonce 1.
EXPECTED_SERVING = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def rpc(url: str, method: str, params: list[object]) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def wait_for_chain(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rpc(url, "eth_chainId", [])
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpc-url", default="http://anvil:8545")
    # The registered URL is the gateway's, where users go; the backend is the gateway's secret.
    parser.add_argument("--service-url", default="http://localhost:3080")
    parser.add_argument("--lock-time", type=int, default=devnet.DEFAULT_LOCK_TIME)
    parser.add_argument("--out", type=Path, default=Path("/tmp/deployment.json"))
    parser.add_argument("--expected-serving", default=EXPECTED_SERVING)
    parser.add_argument("--wait-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    deployer_key, provider_key, receipt_signer = (os.environ.get(name, "") for name in KEY_VARS)
    if not (deployer_key and provider_key and receipt_signer):
        print(f"error: set {' and '.join(KEY_VARS)}", file=sys.stderr)
        return 2
    sizes = [int(n) for n in json.loads(os.environ.get("ZG_CIRCUIT_SIZES") or "[64]")]

    wait_for_chain(args.rpc_url, args.wait_s)
    if rpc(args.rpc_url, "eth_getCode", [args.expected_serving, "latest"]) not in ("0x", "", None):
        print(f"Serving already deployed at {args.expected_serving}: nothing to do")
        return 0
    code = devnet.main(
        [
            "--rpc-url",
            args.rpc_url,
            "--deployer-key",
            deployer_key,
            "--provider-key",
            provider_key,
            "--receipt-signer",
            receipt_signer,
            "--service-url",
            args.service_url,
            "--lock-time",
            str(args.lock_time),
            "--out",
            str(args.out),
            *(a for n in sizes for a in ("--circuit-size", str(n))),
        ]
    )
    if code != 0:
        return code
    deployed = str(json.loads(args.out.read_text())["serving"])
    if deployed.lower() != args.expected_serving.lower():
        print(
            f"error: Serving deployed at {deployed}, but the services expect "
            f"{args.expected_serving}: start from a fresh chain volume",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
