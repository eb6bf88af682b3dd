# SPDX-License-Identifier: Apache-2.0
"""Does settlement keep up? The whole network at a fixed request rate for a fixed time.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 2] [--users 4] [--json]

Every service runs as its own process with the default configuration (zg_shared.localnet:
the default circuit size and keys, the prover pool of `--provers` replicas), except billing's
policy, which the soak sets so that its age rule decides (`--age-s`, the age of the oldest
unsettled request at which an account is settled; the contract's lock time is the minimum and
the fraction is chosen to give this age). Users send paid chat requests at `--rate` per second
in all (open loop: a request is due at its time whether or not the last one is done), each
paying its previous answer's output fee, as the SDK does.

Every `--sample-s` the soak reads the chain: each user's settled nonce, hence which requests
are settled (lag = when the chain first showed it settled minus when the gateway served it)
and the unsettled amount (signed fees the chain has not paid the provider). At the end it stops
the load, waits up to `--drain-s` for settlement to finish, and checks every signed fee: per
user, the FeesSettled amounts on chain plus the fees above the chain's nonce equal what the
user signed, to the wei, and the user's balance fell by exactly the settled amount.

Printed: served/s, settled/s, lag p50/p99, the largest unsettled amount and its course per
minute (it should level off, not climb), gas per settled request, prover CPU seconds per request
(the prover processes' own CPU time over the run, and the proofs' own count), and the check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account as EthAccount
from eth_typing import HexStr

from zg_shared.chain import ServingClient, connect
from zg_shared.chain.events import FeesSettled
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.localnet import DEFAULT_CIRCUIT_SIZES, LocalNetwork

WORDS = "settle these words promptly"
DEPOSIT = 10**18
MIN_LOCK_TIME_S = 600  # the contract's lower bound


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Sent:
    nonce: int
    fee: int
    served_at: float
    settled_at: float | None = None


@dataclass
class User:
    address: str
    signing_key: bytes
    nonce: int = 0
    debt: int = 0  # output fee of the last answer, paid with the next request
    sent: list[Sent] = field(default_factory=list)
    busy: bool = False


@dataclass
class Result:
    minutes: float
    rate: float
    users: int
    provers: int
    circuit_sizes: str
    served: int
    errors: int
    served_per_s: float
    settled: int
    settled_per_s: float
    lag_p50_s: float | None
    lag_p99_s: float | None
    age_threshold_s: float
    max_unsettled_wei: int
    unsettled_by_minute_wei: list[int]
    gas_per_settled_request: float | None
    gas_per_request_under_load: float | None
    settlements: int
    chunks_per_settlement: float | None
    requests_per_chunk: float | None
    prover_cpu_s_per_request: float | None
    proof_cpu_s_per_request: float | None
    settled_wei: int
    owed_wei: int
    signed_wei: int
    accounted: bool
    load: str


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a process (Linux /proc)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> Result:
    fraction = args.age_s / MIN_LOCK_TIME_S
    overrides = {
        "BILLING_MAX_AGE_LOCK_FRACTION": str(fraction),
        "BILLING_THRESHOLD_FEE_WEI": str(10**30),  # never: the age rule decides
        "BILLING_TICK_S": "1",
    }
    with tempfile.TemporaryDirectory(prefix="zg-soak-") as tmp:
        net = LocalNetwork(
            Path(tmp),
            lock_time=MIN_LOCK_TIME_S,
            overrides=overrides,
            provers=args.provers,
            circuit_sizes=args.circuit_sizes,
            progress=log,
        )
        deployment = await net.start()
        try:
            return await soak(net, args, deployment.serving, deployment.provider)
        finally:
            await net.stop()


async def soak(net: LocalNetwork, args: argparse.Namespace, serving: str, provider: str) -> Result:
    assert net.anvil is not None
    w3 = connect(net.anvil.rpc_url)
    chain = ServingClient(w3, serving)
    input_fee = len(WORDS.split()) * (await chain.get_all_services())[0].input_price
    start_block = await w3.eth.block_number
    users = []
    for dev in net.accounts[5 : 5 + args.users]:
        key = EthAccount.from_key(dev.private_key)
        signing_key = generate_private_key()
        await chain.as_sender(key).add_account(
            provider, prv2pub(signing_key).as_tuple(), value=DEPOSIT
        )
        users.append(User(key.address, signing_key))
    url = f"{net.gateway_url}/v1/proxy/demo-chat/chat/completions"
    body = {"model": "zg-demo-1", "messages": [{"role": "user", "content": WORDS}], "max_tokens": 4}
    provers = [p for name, p in net.processes.items() if name.startswith("prover")]
    cpu_before = sum(cpu_seconds(p.pid) for p in provers)
    errors = 0
    samples: list[tuple[float, int]] = []

    async def send(http: aiohttp.ClientSession, user: User) -> None:
        nonlocal errors
        user.busy = True
        user.nonce += 1
        fee = input_fee + user.debt
        signature = sign_request(user.signing_key, user.address, provider, user.nonce, fee)
        headers = {
            "Address": user.address,
            "Nonce": str(user.nonce),
            "Input-Fee": str(input_fee),
            "Previous-Output-Fee": str(user.debt),
            "Fee": str(fee),
            "Signature": signature.to_hex(),
        }
        try:
            async with http.post(url, json=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    user.sent.append(Sent(user.nonce, fee, time.monotonic()))
                    user.debt = int(response.headers.get("ZG-Output-Fee", "0") or 0)
                else:
                    errors += 1
                    if errors <= 5:
                        log(f"request refused: {response.status} {await response.text()}")
        finally:
            user.busy = False

    async def sample() -> int:
        now = time.monotonic()
        unsettled = 0
        for user in users:
            account = await chain.get_account(user.address, provider)
            for sent in user.sent:
                if sent.nonce <= account.nonce:
                    sent.settled_at = sent.settled_at or now
                else:
                    unsettled += sent.fee
        samples.append((now, unsettled))
        return unsettled

    async def sampler(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.sample_s)

    load_before = os.getloadavg()[0]
    started = time.monotonic()
    duration = args.minutes * 60
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler(stop))
    async with aiohttp.ClientSession() as http:
        tasks: set[asyncio.Task[None]] = set()
        i, last_report = 0, started
        log(f"sending {args.rate}/s for {args.minutes} min from {len(users)} users")
        while (due := started + i / args.rate) < started + duration:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            free = [u for u in users if not u.busy]
            if not free:  # every user is waiting for an answer: the gateway lags
                errors += 1
            else:
                user = free[i % len(free)]
                task = asyncio.create_task(send(http, user))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            i += 1
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                served = sum(len(u.sent) for u in users)
                log(f"{served} served, unsettled {samples[-1][1] if samples else 0} wei")
        await asyncio.gather(*tasks)
    load_end = time.monotonic()
    load_end_block = await w3.eth.block_number
    served = sum(len(u.sent) for u in users)
    log(f"load done: {served} served; draining up to {args.drain_s}s")
    stop.set()
    await sampling
    drain_deadline = time.monotonic() + args.drain_s
    while time.monotonic() < drain_deadline:
        if await sample() == 0:
            break
        await asyncio.sleep(args.sample_s)
    cpu_used = sum(cpu_seconds(p.pid) for p in provers) - cpu_before
    load_after = os.getloadavg()[0]

    # The chain's own account of every fee.
    events = await chain.get_events(start_block, await w3.eth.block_number)
    settled_by_user: dict[str, int] = {}
    # Per transaction: its chunks and the requests they settled (a user's nonces since the
    # previous FeesSettled), to tell settlements under load from the drain's remainders.
    chunks_in: dict[str, list[int]] = {}
    block_of: dict[str, int] = {}
    last_nonce: dict[str, int] = {}
    for event in events:
        if isinstance(event, FeesSettled) and event.provider.lower() == provider.lower():
            key = event.user.lower()
            settled_by_user[key] = settled_by_user.get(key, 0) + event.amount
            if event.position is not None:
                tx = event.position.transaction_hash
                block_of[tx] = event.position.block_number
                chunks_in.setdefault(tx, []).append(event.final_nonce - last_nonce.get(key, 0))
            last_nonce[key] = event.final_nonce
    gas_of = {tx: (await w3.eth.get_transaction_receipt(HexStr(tx)))["gasUsed"] for tx in chunks_in}
    gas = sum(gas_of.values())
    under_load = [tx for tx in chunks_in if block_of[tx] <= load_end_block]
    load_requests = sum(sum(chunks_in[tx]) for tx in under_load)
    chunk_sizes = [n for sizes in chunks_in.values() for n in sizes]
    accounted = True
    settled_wei = owed_wei = signed_wei = 0
    for user in users:
        account = await chain.get_account(user.address, provider)
        signed = sum(s.fee for s in user.sent)
        owed = sum(s.fee for s in user.sent if s.nonce > account.nonce)
        settled = settled_by_user.get(user.address.lower(), 0)
        accounted &= settled + owed == signed and DEPOSIT - account.balance == settled
        settled_wei, owed_wei, signed_wei = (
            settled_wei + settled,
            owed_wei + owed,
            signed_wei + signed,
        )
    await w3.provider.disconnect()

    settled_requests = [s for u in users for s in u.sent if s.settled_at is not None]
    lags = sorted(s.settled_at - s.served_at for s in settled_requests if s.settled_at)
    in_load = [s for s in settled_requests if s.settled_at and s.settled_at <= load_end]
    by_minute = [
        max((v for t, v in samples if started + 60 * m <= t < started + 60 * (m + 1)), default=0)
        for m in range(int((samples[-1][0] - started) // 60) + 1)
    ]
    proof_cpu = await proof_cpu_seconds(net)
    n_settled = len(settled_requests)
    return Result(
        minutes=args.minutes,
        rate=args.rate,
        users=len(users),
        provers=args.provers,
        circuit_sizes=net.circuit_sizes_label,
        served=served,
        errors=errors,
        served_per_s=round(served / duration, 2),
        settled=n_settled,
        settled_per_s=round(len(in_load) / duration, 2),
        lag_p50_s=round(statistics.median(lags), 1) if lags else None,
        lag_p99_s=round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 1) if lags else None,
        age_threshold_s=args.age_s,
        max_unsettled_wei=max((v for _, v in samples), default=0),
        unsettled_by_minute_wei=by_minute,
        gas_per_settled_request=round(gas / n_settled) if n_settled else None,
        gas_per_request_under_load=round(sum(gas_of[tx] for tx in under_load) / load_requests)
        if load_requests
        else None,
        settlements=len(chunks_in),
        chunks_per_settlement=round(len(chunk_sizes) / len(chunks_in), 2) if chunks_in else None,
        requests_per_chunk=round(sum(chunk_sizes) / len(chunk_sizes), 1) if chunk_sizes else None,
        prover_cpu_s_per_request=round(cpu_used / n_settled, 3) if n_settled else None,
        proof_cpu_s_per_request=round(proof_cpu / n_settled, 3)
        if n_settled and proof_cpu
        else None,
        settled_wei=settled_wei,
        owed_wei=owed_wei,
        signed_wei=signed_wei,
        accounted=accounted,
        load=f"load average {load_before:.1f} at start, {load_after:.1f} at end, "
        f"{os.cpu_count()} CPUs (shared with other work)",
    )


async def proof_cpu_seconds(net: LocalNetwork) -> float:
    """The CPU time the provers report for their proofs (serving.proof.ready.v1)."""
    import nats

    client = await nats.connect(net.nats_url)
    total = 0.0
    try:
        js = client.jetstream()
        sub = await js.subscribe("serving.proof.ready.v1", ordered_consumer=True)
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                break
            payload: dict[str, Any] = json.loads(msg.data)
            total += float(payload.get("cpu_seconds") or 0.0)
    finally:
        await client.close()
    return total


def render(result: Result) -> str:
    rows = asdict(result)
    width = max(len(k) for k in rows)
    return "\n".join(
        [f"{'metric':<{width}}  value"] + [f"{k:<{width}}  {v}" for k, v in rows.items()]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second, all users")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--provers", type=int, default=1, help="prover processes (the pool)")
    parser.add_argument(
        "--age-s", type=float, default=60.0, help="settle an account once its oldest is this old"
    )
    parser.add_argument(
        "--circuit-sizes",
        type=int,
        nargs="+",
        default=list(DEFAULT_CIRCUIT_SIZES),
        help="circuit sizes N to deploy and prove with (default: the network's)",
    )
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--drain-s", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.users < 1 or args.provers < 1:
        parser.error("--rate, --minutes, --users and --provers must be positive")
    if not 0 < args.age_s <= MIN_LOCK_TIME_S:
        parser.error(f"--age-s must be in (0, {MIN_LOCK_TIME_S}]")
    result = asyncio.run(run(args))
    print(json.dumps(asdict(result), indent=1) if args.json else render(result))
    return 0 if result.accounted else 1


if __name__ == "__main__":
    sys.exit(main())
