"""Requests per second and added latency of one gateway process, against the sample backend
called directly, in one run.

    .venv/bin/python bench/gateway_load.py [--requests 2000] [--concurrency 32] [--json]

Everything runs on this machine: a private Redis and NATS, anvil with the contract, the sample
backend and the gateway as separate processes, and the load generator here. Requests are
signed before the clock starts (signing is the user's cost, not the gateway's). On a 2-core
machine the load generator, the backend and the gateway share the cores: read the figures as
a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import aiohttp
from eth_account import Account as EthAccount

from zg_shared.chain import AnvilNode, ServiceParams, ServingClient
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.localservers import PrivateServer, free_port, port_open

BODY = {
    "model": "zg-demo-1",
    "messages": [{"role": "user", "content": "one two three four"}],
    "max_tokens": 16,
}
NO_VERIFIER = "0x000000000000000000000000000000000000dEaD"


@dataclass
class Row:
    target: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


async def wait_port(port: int, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not port_open(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {port}")
        await asyncio.sleep(0.05)


async def load(url: str, headers: list[dict[str, str]], concurrency: int) -> Row:
    latencies: list[float] = []
    errors = 0
    queue = iter(headers)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal errors
            for h in queue:
                started = time.perf_counter()
                async with http.post(url, json=BODY, headers=h) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Row(
        target=url,
        requests=len(latencies),
        errors=errors,
        seconds=round(elapsed, 2),
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 2),
        p99_ms=round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    )


async def run(total: int, concurrency: int) -> list[Row]:
    with PrivateServer("redis") as redis, PrivateServer("nats") as nats_server:
        async with AnvilNode(accounts=20) as node:
            w3 = node.web3()
            keys = [EthAccount.from_key(a.private_key) for a in node.accounts]
            serving = await ServingClient.deploy(w3, keys[0], lock_time=3600, verifier=NO_VERIFIER)
            provider, receipt_key = keys[1], keys[2]
            backend_port, gateway_port = free_port(), free_port()
            backend_url = f"http://127.0.0.1:{backend_port}/v1"
            await serving.as_sender(provider).add_or_update_service(
                ServiceParams(
                    name="chat",
                    url=backend_url,
                    input_price=1,
                    output_price=1,
                    signer_address=receipt_key.address,
                )
            )
            users = keys[5:15]
            signing = {u.address: generate_private_key() for u in users}
            for user in users:
                await serving.as_sender(user).add_account(
                    provider.address, prv2pub(signing[user.address]).as_tuple(), value=10**18
                )
            await w3.provider.disconnect()
            # Pre-signed requests, round-robin over users; input fee covers 4 words.
            signed: list[dict[str, str]] = []
            for i in range(total):
                user = users[i % len(users)]
                nonce = i // len(users) + 1
                sig = sign_request(signing[user.address], user.address, provider.address, nonce, 4)
                signed.append(
                    {
                        "Address": user.address,
                        "Nonce": str(nonce),
                        "Input-Fee": "4",
                        "Previous-Output-Fee": "0",
                        "Fee": "4",
                        "Signature": sig.to_hex(),
                    }
                )
            env = {
                **os.environ,
                "GATEWAY_PROVIDER_ADDRESS": provider.address,
                "GATEWAY_RECEIPT_PRIVATE_KEY": receipt_key.key.hex(),
                "GATEWAY_REDIS_URL": redis.url,
                "GATEWAY_NATS_URL": nats_server.url,
                "GATEWAY_RPC_URL": node.rpc_url,
                "GATEWAY_SERVING_ADDRESS": serving.address,
                "GATEWAY_HTTP_PORT": str(gateway_port),
                "GATEWAY_RATE_LIMIT_PER_S": "0",
                "GATEWAY_DEBT_BOUND_WEI": str(10**18),
                "GATEWAY_LOG_LEVEL": "WARNING",
            }
            procs = [
                subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
                    [sys.executable, "-m", "zg_sample_backend", "--port", str(backend_port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
                subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, "-m", "zg_gateway"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
            ]
            try:
                await wait_port(backend_port)
                await wait_port(gateway_port)
                warm: list[dict[str, str]] = [{}] * 200
                await load(f"{backend_url}/chat/completions", warm, concurrency)
                direct = await load(f"{backend_url}/chat/completions", [{}] * total, concurrency)
                await load(
                    f"http://127.0.0.1:{gateway_port}/v1/proxy/chat/chat/completions",
                    signed[:200],
                    concurrency,
                )
                gateway = await load(
                    f"http://127.0.0.1:{gateway_port}/v1/proxy/chat/chat/completions",
                    signed[200:],
                    concurrency,
                )
            finally:
                for proc in procs:
                    proc.terminate()
                    proc.wait(10)
    direct.target, gateway.target = "backend directly", "through the gateway"
    return [direct, gateway]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(run(args.requests + 200, args.concurrency))
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
        return 0
    print(f"{'target':<22} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(
            f"{r.target:<22} {r.requests:>8} {r.errors:>6} {r.rps:>8} {r.p50_ms:>8} {r.p99_ms:>8}"
        )
    direct, gateway = rows
    p50, p99 = gateway.p50_ms - direct.p50_ms, gateway.p99_ms - direct.p99_ms
    print(f"\nadded latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
