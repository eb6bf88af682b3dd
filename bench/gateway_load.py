# SPDX-License-Identifier: Apache-2.0
"""Requests per second and added latency of one gateway process, against the sample backend
called directly, in one run.

    .venv/bin/python bench/gateway_load.py [--requests 2000] [--concurrency 32]
        [--workers 1] [--loop auto|asyncio|uvloop] [--json]

Everything runs on this machine: a private Redis and NATS, anvil with the contract, the sample
backend and the gateway as separate processes, and the load generator here. Requests are
signed before the clock starts (signing is the user's cost, not the gateway's). On a 2-core
machine the load generator, the backend and the gateway share the cores: read req/s as a floor.

"req/s per core" is requests divided by the CPU seconds the measured server used (user +
system, its worker processes included) during the run: what one fully busy core would serve.
It holds up when other work shares the machine, where plain req/s does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

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


@dataclass
class Row:
    target: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_s: float
    rps_per_core: float


async def wait_port(port: int, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not port_open(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {port}")
        await asyncio.sleep(0.05)


TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its children (gateway workers), from
    /proc (Linux)."""
    total = 0.0
    for proc in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime
    return total


async def load(url: str, headers: list[dict[str, str]], concurrency: int, server: int) -> Row:
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

        started, cpu_started = time.perf_counter(), cpu_seconds(server)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server) - cpu_started
    latencies.sort()
    return Row(
        target=url,
        requests=len(latencies),
        errors=errors,
        seconds=round(elapsed, 2),
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 2),
        p99_ms=round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        cpu_s=round(cpu, 2),
        rps_per_core=round(len(latencies) / cpu, 1) if cpu > 0 else 0.0,
    )


async def run(total: int, concurrency: int, workers: int, loop: str) -> list[Row]:
    with PrivateServer("redis") as redis, PrivateServer("nats") as nats_server:
        async with AnvilNode(accounts=20) as node:
            w3 = node.web3()
            keys = [EthAccount.from_key(a.private_key) for a in node.accounts]
            serving = await ServingClient.deploy(w3, keys[0], lock_time=3600)
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
                "GATEWAY_HEALTH_PORT": str(free_port()),
                "GATEWAY_BACKENDS": json.dumps({"chat": backend_url}),
                "GATEWAY_RATE_LIMIT_PER_S": "0",
                "GATEWAY_DEBT_BOUND_WEI": str(10**18),
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_WORKERS": str(workers),
                "GATEWAY_EVENT_LOOP": loop,
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
                backend, gateway_server = procs[0].pid, procs[1].pid
                direct_url = f"{backend_url}/chat/completions"
                proxied_url = f"http://127.0.0.1:{gateway_port}/v1/proxy/chat/chat/completions"
                warm: list[dict[str, str]] = [{}] * 200
                await load(direct_url, warm, concurrency, backend)
                direct = await load(direct_url, [{}] * total, concurrency, backend)
                await load(proxied_url, signed[:200], concurrency, gateway_server)
                gateway = await load(proxied_url, signed[200:], concurrency, gateway_server)
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
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(run(args.requests + 200, args.concurrency, args.workers, args.loop))
    direct, gateway = rows
    p50, p99 = gateway.p50_ms - direct.p50_ms, gateway.p99_ms - direct.p99_ms
    if args.json:
        print(
            json.dumps(
                {"rows": [asdict(r) for r in rows], "added_p50_ms": p50, "added_p99_ms": p99}
            )
        )
        return 0
    print(
        f"concurrency {args.concurrency}, gateway workers {args.workers}, loop {args.loop}\n"
        f"{'target':<22} {'requests':>8} {'errors':>6} {'req/s':>8} {'CPU s':>6} "
        f"{'req/s/core':>10} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in rows:
        print(
            f"{r.target:<22} {r.requests:>8} {r.errors:>6} {r.rps:>8} {r.cpu_s:>6} "
            f"{r.rps_per_core:>10} {r.p50_ms:>8} {r.p99_ms:>8}"
        )
    print(f"\nadded latency (gateway - backend directly): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
