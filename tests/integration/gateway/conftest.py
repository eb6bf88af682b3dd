# SPDX-License-Identifier: Apache-2.0
"""A provider's gateway on real servers: anvil with the Serving contract, a private Redis and
NATS, the sample backend over HTTP, and the gateway itself on a local port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_account.signers.local import LocalAccount
from nats.js import JetStreamContext
from redis.asyncio import Redis

from tests.conftest import LOCK_TIME
from tests.integration.jetstream import fresh_streams, stream_events
from zg_gateway.app import create_app
from zg_gateway.config import GatewaySettings
from zg_gateway.keys import HEALTH
from zg_sample_backend import BackendSettings
from zg_sample_backend import create_app as create_backend
from zg_shared.accounts import AccountState, AccountStore
from zg_shared.chain import ServiceParams, ServingClient, Web3Client
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.localservers import free_port

INPUT_PRICE = 10
OUTPUT_PRICE = 20
DEPOSIT = 10**15


@dataclass
class User:
    key: LocalAccount
    signing_key: bytes
    next_nonce: int = 1

    @property
    def address(self) -> str:
        return str(self.key.address)

    def headers(
        self, provider: str, input_fee: int, previous_output_fee: int = 0, nonce: int | None = None
    ) -> dict[str, str]:
        if nonce is None:
            nonce, self.next_nonce = self.next_nonce, self.next_nonce + 1
        fee = input_fee + previous_output_fee
        signature = sign_request(self.signing_key, self.address, provider, nonce, fee)
        return {
            "Address": self.address,
            "Nonce": str(nonce),
            "Input-Fee": str(input_fee),
            "Previous-Output-Fee": str(previous_output_fee),
            "Fee": str(fee),
            "Signature": signature.to_hex(),
        }


@dataclass
class Provider:
    """Everything a gateway test touches."""

    url: str
    address: str
    serving: ServingClient
    redis: Redis
    js: JetStreamContext
    http: aiohttp.ClientSession
    backend_url: str
    health_url: str = ""  # /healthz, /readyz and /metrics: the internal port
    users: list[User] = field(default_factory=list)

    async def state(self, user: User) -> AccountState | None:
        return await AccountStore(self.redis).read(user.address, self.address)

    async def served_events(self) -> list[dict[str, Any]]:
        """Every request.served event on the stream, in order."""
        found = await stream_events(self.js, {"serving.request.served.v1"})
        return [payload for _, payload in found]

    async def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        async with self.http.post(f"{self.url}{path}", json=body, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()


def chat(words: str = "hello there gateway", **extra: Any) -> dict[str, Any]:
    return {"model": "zg-demo-1", "messages": [{"role": "user", "content": words}], **extra}


async def start_backend(settings: BackendSettings) -> web.AppRunner:
    runner = web.AppRunner(create_backend(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    return runner


BackendFactory = Callable[..., BackendSettings]


@pytest.fixture
def backend_settings() -> BackendSettings:
    """Tests override knobs (failures, latency) through this fixture."""
    return BackendSettings(port=free_port(), created=1_700_000_000)


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    """GatewaySettings fields a test changes (e.g. the rate limit), by parametrizing this."""
    return {}


@pytest.fixture
async def provider(
    w3: Web3Client,
    keys: list[LocalAccount],
    redis_url: str,
    nats_url: str,
    backend_settings: BackendSettings,
    gateway_overrides: dict[str, Any],
) -> AsyncIterator[Provider]:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    backend = await start_backend(backend_settings)
    backend_url = f"http://127.0.0.1:{backend_settings.port}/v1"

    serving = await ServingClient.deploy(w3, keys[0], lock_time=LOCK_TIME)
    provider_key, receipt_key = keys[1], keys[2]
    await serving.as_sender(provider_key).add_or_update_service(
        ServiceParams(
            name="chat",
            url=backend_url,
            model="zg-demo-1",
            input_price=INPUT_PRICE,
            output_price=OUTPUT_PRICE,
            signer_address=receipt_key.address,
        )
    )
    users = []
    for key in keys[5:8]:
        signing_key = generate_private_key()
        pub = prv2pub(signing_key)
        await serving.as_sender(key).add_account(
            provider_key.address, pub.as_tuple(), value=DEPOSIT
        )
        users.append(User(key, signing_key))

    await fresh_streams(nats_url, str(w3.provider.endpoint_uri), serving.address)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    settings = GatewaySettings(
        **{
            "environment": "test",
            "provider_address": provider_key.address,
            "receipt_private_key": receipt_key.key.hex(),
            "redis_url": redis_url,
            "nats_url": nats_url,
            "rpc_url": str(w3.provider.endpoint_uri),
            "serving_address": serving.address,
            "default_max_output_units": 100,
            # Small enough that an oversized test body still fits the socket buffers.
            "max_body_bytes": 64 * 1024,
            "rate_limit_per_s": 0,
            "log_json": False,
            "health_port": 0,
            # "also_served": more service names this gateway serves from the same backend.
            "backends": {
                name: backend_url for name in ("chat", *gateway_overrides.get("also_served", ()))
            },
            **{k: v for k, v in gateway_overrides.items() if k != "also_served"},
        }
    )
    app = create_app(settings)
    server = TestServer(app, port=free_port())
    await server.start_server()
    health = app[HEALTH]
    assert health is not None
    http = aiohttp.ClientSession()
    try:
        yield Provider(
            url=str(server.make_url("")).rstrip("/"),
            address=provider_key.address,
            serving=serving,
            redis=redis,
            js=js,
            http=http,
            backend_url=backend_url,
            health_url=f"http://127.0.0.1:{health.port}",
            users=users,
        )
    finally:
        await http.close()
        await server.close()
        await backend.cleanup()
        await nc.close()
        await redis.aclose()


@dataclass
class GatewayProcess:
    """`python -m zg_gateway` serving the provider fixture's contract, Redis and NATS."""

    url: str
    process: subprocess.Popen[bytes]
    health_url: str
    log: Path | None = None  # its stdout and stderr, where a test asked for them

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log is not None else ""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def gateway_env(
    provider: Provider, receipt_key: LocalAccount, rpc_url: str, redis_url: str, nats_url: str,
    port: int, **settings: str,
) -> dict[str, str]:  # fmt: skip
    """The environment of a gateway process; `settings` are GATEWAY_* values by field name."""
    return {
        **os.environ,
        "GATEWAY_ENVIRONMENT": "test",  # anvil's keys: refused in production (the default)
        "GATEWAY_PROVIDER_ADDRESS": provider.address,
        "GATEWAY_RECEIPT_PRIVATE_KEY": receipt_key.key.hex(),
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_NATS_URL": nats_url,
        "GATEWAY_RPC_URL": rpc_url,
        "GATEWAY_SERVING_ADDRESS": provider.serving.address,
        "GATEWAY_HTTP_PORT": str(port),
        "GATEWAY_HEALTH_PORT": str(free_port()),
        "GATEWAY_BACKENDS": json.dumps({"chat": provider.backend_url}),
        "GATEWAY_RATE_LIMIT_PER_S": "0",
        "GATEWAY_DEFAULT_MAX_OUTPUT_UNITS": "100",
        "GATEWAY_LOG_JSON": "false",
        **{f"GATEWAY_{name.upper()}": value for name, value in settings.items()},
    }


async def start_gateway(
    env: dict[str, str], within_s: float = 30.0, log: Path | None = None
) -> GatewayProcess:
    """Starts the gateway process (its output to `log` if given, else this process's) and
    waits until /readyz answers 200."""
    port = int(env["GATEWAY_HTTP_PORT"])
    with contextlib.ExitStack() as files:
        out = files.enter_context(log.open("ab")) if log is not None else None
        process = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "zg_gateway"], env=env, stdout=out, stderr=out
        )
    health = f"http://127.0.0.1:{env['GATEWAY_HEALTH_PORT']}"
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", process, health, log)
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while True:
            assert gateway.alive, f"the gateway exited with {process.returncode}"
            assert time.monotonic() < deadline, "the gateway did not become ready"
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{gateway.health_url}/readyz") as resp:
                    if resp.status == 200:
                        return gateway
            await asyncio.sleep(0.1)


def stop_gateway(gateway: GatewayProcess) -> None:
    if gateway.alive:
        gateway.process.kill()
    gateway.process.wait()


@pytest.fixture
async def gateway_process(
    provider: Provider,
    keys: list[LocalAccount],
    w3: Web3Client,
    redis_url: str,
    nats_url: str,
    tmp_path: Path,
) -> AsyncIterator[GatewayProcess]:
    """A second gateway of the provider, as its own process (what a crash would take down),
    its output in `log`."""
    env = gateway_env(
        provider, keys[2], str(w3.provider.endpoint_uri), redis_url, nats_url, free_port()
    )
    gateway = await start_gateway(env, log=tmp_path / "gateway.log")
    try:
        yield gateway
    finally:
        stop_gateway(gateway)
