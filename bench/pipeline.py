# SPDX-License-Identifier: Apache-2.0
"""The whole pipeline under load: served requests per second, how fast billing books them,
settlement lag (p50, p99) and gas per settled request at the batch sizes billing chooses.

    .venv/bin/python bench/pipeline.py [--users 4] [--requests 400] [--concurrency 16]
        [--provers K] [--json]

Everything runs on this machine as separate processes (zg_shared.localnet): NATS, Redis,
anvil, the sample backend, the gateway, the prover (the default N=64 DEV keys; `--circuit-size
4` for the committed ones), the chain indexer and billing.
Load: `--requests` paid chat requests from `--users` users, `--concurrency` at a time. Billing
runs its default policy except a 1 wei threshold (settle as soon as there is anything), so the
lag measured is the pipeline's own: seal, prove, submit, confirm. With `--full-chunks` (and a
multiple of N requests per user) only the full-chunk rule settles, so every chunk is full, and
`--provers K` shows the pool proving them in parallel. On 2 cores the prover shares
the CPU with everything else: read the figures as a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats
from eth_account import Account as EthAccount

from zg_shared.chain import ServingClient, connect
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.events import RequestServedV1, SettlementConfirmedV1
from zg_shared.localnet import DEFAULT_CIRCUIT_SIZES, LocalNetwork

WORDS = "please settle these four words"
DEPOSIT = 10**18
EAGER = {"BILLING_THRESHOLD_FEE_WEI": "1", "BILLING_TICK_S": "0.5"}
# Neither the threshold nor an account half way joining: each account settles its full chunks.
FULL_CHUNKS = {
    "BILLING_THRESHOLD_FEE_WEI": str(10**30),
    "BILLING_JOIN_FRACTION": "0",
    "BILLING_TICK_S": "0.5",
}


@dataclass
class Result:
    requests: int
    errors: int
    serve_seconds: float
    served_per_s: float
    booked_per_s: float
    settled_requests: int
    settle_seconds: float
    settled_per_s: float
    lag_p50_s: float
    lag_p99_s: float
    settlements: int
    requests_per_settlement: float
    gas_per_request: float
    provers: int
    load: str


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def stream(js: Any, subject: str) -> list[dict[str, Any]]:
    """Every payload on `subject` in ZG_SERVING, in order."""
    info = await js.stream_info("ZG_SERVING")
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg("ZG_SERVING", seq)
        if msg.subject == subject and msg.data:
            found.append(json.loads(msg.data))
    return found


async def recorded(http: aiohttp.ClientSession, metrics_url: str) -> int:
    async with http.get(metrics_url) as response:
        text = await response.text()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("zg_billing_requests_recorded_total{")
        )
    )


async def run(args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="zg-bench-") as tmp:
        net = LocalNetwork(
            Path(tmp),
            overrides=FULL_CHUNKS if args.full_chunks else EAGER,
            progress=log,
            circuit_sizes=args.circuit_size,
            provers=args.provers,
        )
        deployment = await net.start()
        try:
            return await measure(net, args, deployment.serving, deployment.provider)
        finally:
            await net.stop()


async def measure(
    net: LocalNetwork, args: argparse.Namespace, serving: str, provider: str
) -> Result:
    assert net.anvil is not None
    w3 = connect(net.anvil.rpc_url)
    client = ServingClient(w3, serving)
    input_price = (await client.get_all_services())[0].input_price
    input_fee = len(WORDS.split()) * input_price
    users = []
    for account in net.accounts[5 : 5 + args.users]:
        key = EthAccount.from_key(account.private_key)
        signing_key = generate_private_key()
        await client.as_sender(key).add_account(
            provider, prv2pub(signing_key).as_tuple(), value=DEPOSIT
        )
        users.append((key.address, signing_key))
    log(f"{len(users)} users deposited; signing {args.requests} requests")
    headers = []
    for i in range(args.requests):
        address, signing_key = users[i % len(users)]
        nonce = i // len(users) + 1
        signature = sign_request(signing_key, address, provider, nonce, input_fee)
        headers.append(
            {
                "Address": address,
                "Nonce": str(nonce),
                "Input-Fee": str(input_fee),
                "Previous-Output-Fee": "0",
                "Fee": str(input_fee),
                "Signature": signature.to_hex(),
            }
        )
    url = f"{net.gateway_url}/v1/proxy/demo-chat/chat/completions"
    body = {"model": "zg-demo-1", "messages": [{"role": "user", "content": WORDS}], "max_tokens": 8}
    errors = 0
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for h in headers:
        queue.put_nowait(h)
    billing_metrics = net.processes["billing"].ready_url.replace("/readyz", "/metrics")

    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                h = queue.get_nowait()
                async with http.post(url, json=body, headers=h) as response:
                    await response.read()
                    errors += response.status != 200

        log(f"sending {args.requests} requests, {args.concurrency} at a time")
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        serve_seconds = time.monotonic() - started
        served = args.requests - errors
        while True:  # until billing has booked every served request
            if await recorded(http, billing_metrics) >= served:
                break
            await asyncio.sleep(0.05)
        booked_seconds = time.monotonic() - started
        log(
            f"served {served} in {serve_seconds:.1f}s; billing booked them by {booked_seconds:.1f}s"
        )

        nc = await nats.connect(net.nats_url)
        js = nc.jetstream()
        try:
            total_fee = served * input_fee
            last_report = 0.0
            while True:
                confirmed = await stream(js, SettlementConfirmedV1.SUBJECT)
                settled_fee = sum(int(p["total_fee"]) for p in confirmed)
                if settled_fee >= total_fee:
                    break
                if time.monotonic() - last_report > 5:
                    log(f"settled {settled_fee // input_fee} of {served} requests")
                    last_report = time.monotonic()
                if time.monotonic() - started > args.timeout:
                    raise TimeoutError(f"not all settled in {args.timeout}s")
                await asyncio.sleep(0.5)
            settle_seconds = time.monotonic() - started
            served_events = await stream(js, RequestServedV1.SUBJECT)
        finally:
            await nc.close()
    await w3.provider.disconnect()

    # Per request: from when the gateway served it to when its chunk's settlement confirmed.
    confirmed_at: dict[tuple[str, int], datetime] = {}
    for settlement in confirmed:
        at = datetime.fromisoformat(settlement["occurred_at"])
        for chunk in settlement["chunks"]:
            for nonce in range(chunk["init_nonce"], chunk["final_nonce"] + 1):
                confirmed_at[(chunk["user"], nonce)] = at
    lags = sorted(
        (
            confirmed_at[(e["user"], e["nonce"])] - datetime.fromisoformat(e["occurred_at"])
        ).total_seconds()
        for e in served_events
        if (e["user"], e["nonce"]) in confirmed_at
    )
    settled_requests = sum(int(p["total_fee"]) for p in confirmed) // input_fee
    gas = sum(int(p["gas_used"]) for p in confirmed)
    return Result(
        requests=args.requests,
        errors=errors,
        serve_seconds=round(serve_seconds, 2),
        served_per_s=round(served / serve_seconds, 1),
        booked_per_s=round(served / booked_seconds, 1),
        settled_requests=settled_requests,
        settle_seconds=round(settle_seconds, 1),
        settled_per_s=round(settled_requests / settle_seconds, 2),
        lag_p50_s=round(statistics.median(lags), 1),
        lag_p99_s=round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 1),
        settlements=len(confirmed),
        requests_per_settlement=round(settled_requests / len(confirmed), 1),
        gas_per_request=round(gas / settled_requests),
        provers=args.provers,
        load=f"load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end, "
        f"{os.cpu_count()} CPUs (shared with other work)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after (s)")
    parser.add_argument(
        "--circuit-size", type=int, nargs="+", default=list(DEFAULT_CIRCUIT_SIZES), metavar="N"
    )
    parser.add_argument("--provers", type=int, default=1, help="prover processes (the pool)")
    parser.add_argument(
        "--full-chunks",
        action="store_true",
        help="only the full-chunk rule settles (send a multiple of N requests per user)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.provers < 1:
        parser.error("--provers must be positive")
    if args.full_chunks and args.requests % (max(args.circuit_size) * args.users):
        parser.error("--full-chunks needs a multiple of N requests per user")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return
    width = max(len(k) for k in asdict(result))
    print(f"{'metric':<{width}}  value")
    for key, value in asdict(result).items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
