# SPDX-License-Identifier: Apache-2.0
"""The whole network on one machine, as separate processes: NATS, Redis, anvil with the
contracts deployed, the sample backend and the four services (gateway, prover, chain indexer,
billing), each started from its console script with its settings in the environment.

The end-to-end tests and `zg network up` both run it. It deploys anew every time, so it
clears whatever zgserve state the NATS and Redis it is given hold (after checking that the
deployment which wrote it no longer runs) and stamps them with the new deployment
(`zg_shared.deployment`). Every service gets its own log file
under `workdir/logs`, and a process can be stopped, killed (SIGKILL) and started again, which
is how the fault drills take a service down mid-work.

Keys are anvil's public development keys (0 deploys, 1 is the provider, 2 signs receipts):
never use them on a real network. Each service reads its secrets as a deployment would, from
files in a folder of its own (`workdir/secrets/SERVICE/`, named by ZG_SECRETS_DIR): its keys
and its Redis and NATS passwords. A Redis this network starts itself knows only the
repository's ACL users (zg_shared.redisacl), a NATS only the repository's users and
permissions (zg_shared.natsauth), with passwords generated for this network; the streams are
created by the admin step (as `zg-bus-admin create-streams` does), never by the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from eth_account import Account as EthAccount
from nats.errors import Error as NatsError
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError

from zg_shared.chain.anvil import AnvilNode, DevAccount
from zg_shared.chain.client import connect
from zg_shared.chain.devnet import DEMO_SERVICE, Deployment, deploy_network
from zg_shared.deployment import (
    DeploymentStamp,
    describe,
    identify,
    reset_state,
    running_elsewhere,
)
from zg_shared.localservers import Credentials, PrivateServer, free_port
from zg_shared.natsauth import ADMIN_USER as NATS_ADMIN
from zg_shared.natsauth import SERVICE_USERS as NATS_USERS
from zg_shared.natsauth import NatsCredentials
from zg_shared.ports import busy_ports
from zg_shared.redisacl import ADMIN_USER, SERVICE_USERS, RedisCredentials
from zg_shared.settings import SECRETS_DIR_ENV
from zg_shared.zk.keys import verifier_artifacts

SERVICES = ("sample-backend", "gateway", "prover", "chain-indexer", "billing")
# SettleBatch(64): single-party DEV keys made once per machine (~2 min of CPU, cached outside
# the checkout, progress on stderr); tests pass (4,) for the committed keys.
DEFAULT_CIRCUIT_SIZES = (64,)
READY_TIMEOUT_S = 60.0
# A prover is ready once its proving keys are loaded: N=64's DEV key takes ~1 min of CPU.
PROVER_READY_TIMEOUT_S = 900.0

Progress = Callable[[str], None]
# How a service starts: its name, command (console script and arguments) and environment in;
# the command and environment to run out. The default runs the command as it is; the container
# tests run the same service from its image instead (tests/integration/ops/containers.py).
Launcher = Callable[[str, list[str], Mapping[str, str]], tuple[list[str], dict[str, str]]]


def as_process(
    _: str, command: list[str], env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    return command, dict(env)


def _quiet(_: str) -> None:
    return None


class NetworkRefused(RuntimeError):
    """The network cannot start here, and nothing was touched: the message says why."""


class PortsInUse(NetworkRefused):
    """A port the network must listen on is taken."""


class StateInUse(NetworkRefused):
    """The NATS and Redis given hold the state of a deployment that still runs."""


class ProcessStatus(BaseModel):
    name: str
    pid: int | None
    running: bool
    url: str
    log: str


class ManagedProcess:
    """One service process: started from its console script, health-checked on /readyz (or
    /healthz for the sample backend), stopped with SIGTERM or killed with SIGKILL."""

    def __init__(
        self, name: str, command: list[str], env: Mapping[str, str], ready_url: str, log: Path
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.ready_url = ready_url
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches only us
            )

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with aiohttp.ClientSession() as http:
            while True:
                if not self.running:
                    raise RuntimeError(f"{self.name} exited; see {self.log}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(self.ready_url) as response:
                        if response.status == 200:
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.name} not ready in {timeout_s}s; see {self.log}")
                await asyncio.sleep(0.2)

    async def stop(self, timeout_s: float = 20.0) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (what a crash looks like)."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def status(self) -> ProcessStatus:
        return ProcessStatus(
            name=self.name,
            pid=self.pid,
            running=self.running,
            url=self.ready_url.rsplit("/", 1)[0],
            log=str(self.log),
        )


class LocalNetwork:
    """Starts and stops everything; `processes[name]` gives each service's process."""

    def __init__(
        self,
        workdir: Path,
        *,
        nats_url: str | None = None,
        redis_url: str | None = None,
        redis_credentials: RedisCredentials | None = None,
        nats_credentials: NatsCredentials | None = None,
        chain_port: int | None = None,
        gateway_port: int | None = None,
        backend_port: int | None = None,
        lock_time: int = 3600,
        confirmations: int = 0,
        overrides: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        launcher: Launcher = as_process,
        progress: Progress = _quiet,
        circuit_sizes: Sequence[int] = DEFAULT_CIRCUIT_SIZES,
        provers: int = 1,
        stream_replicas: int = 1,
        redis_sentinels: str = "",
        redis_sentinel_password: str = "",
        billings: int = 1,
        gateways: int = 1,
    ) -> None:
        """`overrides`: settings by their prefixed names, each for the service it names;
        `environment`: variables every service gets (OpenTelemetry's OTEL_*, say);
        `nats_url` may list a cluster's servers, with `stream_replicas` copies of each stream;
        `redis_sentinels` (with their password): the services find Redis's primary through
        them, `redis_url` being the primary at start (for this class's own admin work);
        `billings` > 1: standbys ("billing-2", ...) beside the leader, ready and waiting for
        its lease; `gateways` > 1: more gateway processes ("gateway-2", ...) on the same Redis
        and NATS, each on a port of its own (`gateway_ports`)."""
        self.workdir = workdir
        self.circuit_sizes = tuple(sorted(set(circuit_sizes)))
        # The prover pool: replicas on one durable consumer share the settlement chunks.
        replicas = {"prover": provers, "billing": billings, "gateway": gateways}  # how many
        self.services = tuple(
            name
            for service in SERVICES
            for name in [
                service,
                *(f"{service}-{i}" for i in range(2, replicas.get(service, 1) + 1)),
            ]
        )
        self.lock_time = lock_time
        self.stream_replicas = stream_replicas
        self.redis_sentinels = redis_sentinels
        self.redis_sentinel_password = redis_sentinel_password
        self.confirmations = confirmations
        self.overrides = dict(overrides or {})
        self.environment = dict(environment or {})
        self.launcher = launcher
        self.progress = progress
        self.chain_port = chain_port
        self.gateway_port = gateway_port or free_port()
        self.gateway_ports = {
            name: self.gateway_port if name == "gateway" else free_port()
            for name in self.services
            if name.startswith("gateway")
        }
        self.backend_port = backend_port or free_port()
        self._nats_url = nats_url
        self._redis_url = redis_url
        # Passwords of the ACL users of the Redis at redis_url; None: it has no ACL users.
        self.redis_credentials = redis_credentials
        # Passwords of the users of the NATS at nats_url; None: it takes anonymous clients.
        self.nats_credentials = nats_credentials
        self._servers: list[PrivateServer] = []
        self.anvil: AnvilNode | None = None
        self.deployment: Deployment | None = None
        self.processes: dict[str, ManagedProcess] = {}

    @property
    def nats_url(self) -> str:
        """NATS as its admin, for tools and tests (the services log in as themselves)."""
        assert self._nats_url is not None, "start() first"
        if self.nats_credentials is None:
            return self._nats_url
        return self.nats_credentials.url(self._nats_url, NATS_ADMIN)

    @property
    def redis_url(self) -> str:
        """Redis as its admin, for tools and tests (the services log in as themselves)."""
        assert self._redis_url is not None, "start() first"
        if self.redis_credentials is None:
            return self._redis_url
        return self.redis_credentials.url(self._redis_url, ADMIN_USER)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def accounts(self) -> list[DevAccount]:
        """anvil's funded dev accounts: 0 deployer, 1 provider, 2 receipt signer, 5+ users."""
        assert self.anvil is not None, "start() first"
        return self.anvil.accounts

    def fixed_ports(self) -> dict[str, int]:
        """The ports this network will listen on itself (NATS and Redis may already run)."""
        ports = {
            "chain": self.chain_port,
            "gateway": self.gateway_port,
            "backend": self.backend_port,
        }
        return {role: port for role, port in ports.items() if port is not None}

    def check_ports(self) -> None:
        busy = busy_ports(self.fixed_ports())
        if busy:
            raise PortsInUse("cannot start the network: " + "; ".join(busy))

    async def start(self) -> Deployment:
        self.check_ports()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for kind in ("nats", "redis"):
            if (self._nats_url if kind == "nats" else self._redis_url) is None:
                self.progress(f"starting {kind}")
                acl: Credentials
                if kind == "redis":
                    acl = self.redis_credentials = RedisCredentials.generate()
                else:
                    acl = self.nats_credentials = NatsCredentials.generate()
                server = PrivateServer(kind, acl=acl)
                server.start()
                self._servers.append(server)
                if kind == "nats":
                    self._nats_url = server.url
                else:
                    self._redis_url = server.url
        await self._check_state_unused()
        if self.nats_credentials is not None:
            # For the operator's `zg provider settle`, which logs in as NATS's admin:
            # ZG_SECRETS_DIR=DIR/secrets/operator zg provider settle
            assert self._nats_url is not None
            self._write_secrets(
                "operator",
                {
                    "ZG_NATS_URL": self._nats_url,
                    "ZG_NATS_USERNAME": NATS_ADMIN,
                    "ZG_NATS_PASSWORD": self.nats_credentials.passwords[NATS_ADMIN],
                },
            )
        self.progress("starting anvil")
        self.anvil = AnvilNode(port=self.chain_port, accounts=20)
        await self.anvil.start()
        verifiers = await asyncio.to_thread(verifier_artifacts, self.circuit_sizes, self.progress)
        self.progress(
            f"deploying the verifiers (N = {self.circuit_sizes_label}) and Serving, "
            "registering the demo service"
        )
        w3 = connect(self.anvil.rpc_url)
        try:
            deployer, provider, signer = (
                EthAccount.from_key(a.private_key) for a in self.anvil.accounts[:3]
            )
            self.deployment = await deploy_network(
                w3,
                self.anvil.rpc_url,
                deployer,
                provider,
                signer.address,
                lock_time=self.lock_time,
                service_url=self.gateway_url,  # users are sent to the gateway, never the backend
                verifiers=verifiers,
            )
        finally:
            await w3.provider.disconnect()
        (self.workdir / "deployment.json").write_text(self.deployment.model_dump_json(indent=2))
        await self._reset_state()
        for name in self.services:
            self.processes[name] = self._process(name)
        for name in self.services:
            self.progress(f"starting {name}")
            self.processes[name].start()
            if name.startswith("prover"):
                continue  # the pool loads its keys side by side; waited for below
            await self.processes[name].wait_ready()
        await asyncio.gather(
            *(
                p.wait_ready(PROVER_READY_TIMEOUT_S)
                for n, p in self.processes.items()
                if n.startswith("prover")
            )
        )
        return self.deployment

    async def _check_state_unused(self) -> None:
        await check_state_unused(self.nats_url, self.redis_url)

    async def _reset_state(self) -> None:
        """The new deployment starts on empty state: an older deployment's balances, signers
        and nonces must never be read as this one's."""
        assert self.anvil is not None
        assert self.deployment is not None
        w3 = connect(self.anvil.rpc_url)
        try:
            identity = await identify(w3, self.deployment.serving)
        finally:
            await w3.provider.disconnect()
        stamp = DeploymentStamp(**identity.model_dump(), rpc_url=self.anvil.rpc_url)
        redis = Redis.from_url(self.redis_url)
        try:
            removed = await reset_state(redis, self.nats_url, stamp, self.stream_replicas)
        finally:
            await redis.aclose()
        if removed:
            self.progress(f"cleared {removed} Redis keys and the streams of an older deployment")

    async def stop(self) -> None:
        for name in reversed(self.services):
            if name in self.processes:
                self.progress(f"stopping {name}")
                await self.processes[name].stop()
        if self.anvil is not None:
            self.progress("stopping anvil")
            await self.anvil.stop()
            self.anvil = None
        for server in self._servers:
            server.stop()
        self._servers.clear()

    async def restart(self, name: str) -> None:
        process = self.processes[name]
        await process.stop()
        process.start()
        await process.wait_ready(
            PROVER_READY_TIMEOUT_S if name.startswith("prover") else READY_TIMEOUT_S
        )

    def status(self) -> list[ProcessStatus]:
        return [self.processes[n].status() for n in self.services if n in self.processes]

    @property
    def circuit_sizes_label(self) -> str:
        return ", ".join(str(n) for n in self.circuit_sizes)

    def _process(self, name: str) -> ManagedProcess:
        assert self.anvil is not None
        assert self.deployment is not None
        keys = [a.private_key for a in self.anvil.accounts]
        common = {
            "ENVIRONMENT": "development",
            "NATS_URL": self._nats_url or "",
            "NATS_STREAM_REPLICAS": str(self.stream_replicas),
            "REDIS_URL": self._redis_url or "",
            "RPC_URL": self.anvil.rpc_url,
            "SERVING_ADDRESS": self.deployment.serving,
            "LOG_JSON": "true",
        }
        port = free_port()
        sizes = json.dumps(list(self.circuit_sizes))
        specific: dict[str, dict[str, str]] = {
            "gateway": {
                "HTTP_PORT": str(self.gateway_ports.get(name, self.gateway_port)),
                # The backend is the gateway's private configuration, never read from the chain.
                "BACKENDS": json.dumps({DEMO_SERVICE: f"http://127.0.0.1:{self.backend_port}/v1"}),
                "HEALTH_PORT": str(port),  # /readyz and /metrics: never the users' port
                "PROVIDER_ADDRESS": self.deployment.provider,
            },
            "prover": {"HTTP_PORT": str(port), "CIRCUIT_SIZES": sizes},
            "chain-indexer": {
                "HTTP_PORT": str(port),
                "CONFIRMATIONS": str(self.confirmations),
                "POLL_INTERVAL_S": "0.5",
            },
            "billing": {
                "HTTP_PORT": str(port),
                "CIRCUIT_SIZES": sizes,
                "CONFIRMATIONS": str(self.confirmations),
            },
        }
        secrets: dict[str, dict[str, str]] = {
            "gateway": {"RECEIPT_PRIVATE_KEY": keys[2]},
            "billing": {"PROVIDER_PRIVATE_KEY": keys[1]},
        }
        # Replicas ("prover-2", "billing-2", ...) are their service with another name.
        service = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        user = SERVICE_USERS.get(service)
        if self.redis_credentials is not None and user is not None:
            specific[service]["REDIS_USERNAME"] = user
            secrets.setdefault(service, {})["REDIS_PASSWORD"] = self.redis_credentials.passwords[
                user
            ]
        if self.redis_sentinels and user is not None:
            specific[service]["REDIS_SENTINELS"] = self.redis_sentinels
            if self.redis_sentinel_password:
                secrets.setdefault(service, {})["REDIS_SENTINEL_PASSWORD"] = (
                    self.redis_sentinel_password
                )
        nats_user = NATS_USERS.get(service)
        if self.nats_credentials is not None and nats_user is not None:
            specific[service]["NATS_USERNAME"] = nats_user
            password = self.nats_credentials.passwords[nats_user]
            secrets.setdefault(service, {})["NATS_PASSWORD"] = password
        if name == "sample-backend":
            return ManagedProcess(
                name,
                *self.launcher(
                    name,
                    [_script("zg-sample-backend")],
                    {**self.environment, "SAMPLE_BACKEND_PORT": str(self.backend_port)},
                ),
                f"http://127.0.0.1:{self.backend_port}/healthz",
                self.workdir / "logs" / f"{name}.log",
            )
        prefix = {"chain-indexer": "INDEXER_"}.get(service, service.upper() + "_")
        env = dict(self.environment)
        env.update({prefix + k: v for k, v in {**common, **specific[service]}.items()})
        env[SECRETS_DIR_ENV] = str(
            self._write_secrets(name, {prefix + k: v for k, v in secrets.get(service, {}).items()})
        )
        env.update({k: v for k, v in self.overrides.items() if k.startswith(prefix)})
        return ManagedProcess(
            name,
            *self.launcher(name, [_script(f"zg-{service}")], env),
            f"http://127.0.0.1:{port}/readyz",  # the gateway's too: its internal port
            self.workdir / "logs" / f"{name}.log",
        )

    def _write_secrets(self, name: str, values: Mapping[str, str]) -> Path:
        """A folder only this user can read, a file per secret, as a Secret volume mounts."""
        folder = self.workdir / "secrets" / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        for key, value in values.items():
            path = folder / key
            path.write_text(value)
            path.chmod(0o600)
        return folder


async def check_state_unused(nats_url: str, redis_url: str) -> None:
    """Raises `StateInUse` if these servers hold the state of a deployment that still runs:
    deploying anew clears that state."""
    redis = Redis.from_url(redis_url)
    shown = _without_password(redis_url)
    try:
        running = await running_elsewhere(redis, nats_url)
    except (AuthenticationError, NoPermissionError) as exc:
        raise StateInUse(
            f"Redis {shown} refuses this client ({exc}): it has ACL users, as the Redis a "
            f"running `zg network up` starts for itself has. Stop that network first, or give "
            f"this one a Redis of its own (another --redis-port)."
        ) from None
    except NatsError as exc:
        raise StateInUse(
            f"NATS {_without_password(nats_url)} refuses this client ({exc}): it has users, as "
            f"the NATS a running `zg network up` starts for itself has. Stop that network "
            f"first, or give this one a NATS of its own (another --nats-port)."
        ) from None
    finally:
        await redis.aclose()
    if running is not None:
        raise StateInUse(
            f"NATS {nats_url} and Redis {shown} hold the state of a network that still runs: "
            f"{describe(running)}. Stop that one first (`zg network down`), or give this one "
            f"NATS and Redis of its own (other ports)."
        )


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _script(name: str) -> str:
    """A console script of this installation (beside the running Python), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: is zgserve installed (pip install -e .)?")
    return found
