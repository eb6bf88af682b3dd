# SPDX-License-Identifier: Apache-2.0
"""A provider on real servers for the SDK to use: anvil with the Serving contract and one
registered service, a private Redis and NATS, the sample backend over HTTP, and a real
gateway on a local port, whose URL the service registers on chain. The user's account is
left for the SDK to create."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis

from tests.conftest import LOCK_TIME
from tests.integration.gateway.conftest import start_backend
from tests.integration.jetstream import fresh_streams
from zg_gateway.app import create_app
from zg_gateway.config import GatewaySettings
from zg_gateway.keys import SERVICE as GATEWAY_SERVICE
from zg_gateway.service import GatewayService
from zg_sample_backend import BackendSettings
from zg_shared.accounts import AccountState, AccountStore
from zg_shared.chain import Service, ServiceParams, ServingClient, Web3Client
from zg_shared.localservers import free_port
from zg_shared.zk.circuit import CACHE_ENV, zk_cache_dir
from zgserve import SyncZgClient, ZgClient

SERVICE = "chat"
INPUT_PRICE = 10
OUTPUT_PRICE = 20
DEPOSIT = 10**15


@dataclass
class Network:
    rpc_url: str
    contract: str
    provider: str
    provider_key: LocalAccount
    registered_signer: str
    gateway_url: str
    redis: Redis
    serving: ServingClient
    user_key: LocalAccount
    state_dir: Path
    gateway: GatewayService | None = None  # the running gateway's (None: `deployed` only)

    def client(
        self, key: LocalAccount | None = None, *, elsewhere: bool = False, **options: Any
    ) -> ZgClient:
        """A client of `key` (the user by default); `elsewhere`: on another machine, with no
        state directory of its own; `options`: ZgClient's (limits, terms_max_age_s, ...)."""
        wallet = key or self.user_key
        home = None if elsewhere else self.state_dir
        return ZgClient(self.rpc_url, self.contract, wallet.key.hex(), state_dir=home, **options)

    @contextmanager
    def sync_stream(
        self, messages: list[openai.types.chat.ChatCompletionMessageParam]
    ) -> Iterator[tuple[SyncZgClient, openai.Stream[openai.types.chat.ChatCompletionChunk]]]:
        """The user's sync client, on a fresh account, and a chat stream it asked for; the
        client closes on leaving."""
        key = self.user_key.key.hex()
        with SyncZgClient(self.rpc_url, self.contract, key, state_dir=self.state_dir) as zg:
            zg.create_account(self.provider, deposit=DEPOSIT)
            session = zg.session(self.provider, SERVICE)
            ai = openai.OpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
            yield zg, ai.chat.completions.create(model="zg-demo-1", messages=messages, stream=True)

    async def reprice(self, **changes: Any) -> Service:
        """The provider changes its service on chain (prices, URL, ...)."""
        registered = await self.serving.get_service(self.provider, SERVICE)
        params = registered.model_dump(exclude={"provider", "updated_at"})
        provider = self.serving.as_sender(self.provider_key)
        await provider.add_or_update_service(ServiceParams(**{**params, **changes}))
        return await self.serving.get_service(self.provider, SERVICE)

    async def state(self, user: str) -> AccountState | None:
        return await AccountStore(self.redis).read(user, self.provider)


@pytest.fixture
def gateway_receipt_key(keys: list[LocalAccount]) -> LocalAccount:
    """The key the gateway signs receipts with: the registered signer (override to forge)."""
    return keys[2]


@pytest.fixture
def backend_knobs() -> dict[str, Any]:
    """The sample backend's settings beyond its port (override for long or slow replies)."""
    return {}


@pytest.fixture
def more_backends() -> dict[str, str]:
    """Backends of services a test registers beside `chat` (name -> URL), for the gateway:
    a test of a new endpoint or counting rule overrides this and registers its own service."""
    return {}


@pytest.fixture
def gateway_knobs() -> dict[str, Any]:
    """The gateway's settings beyond those `network` sets (override per module or test)."""
    return {}


@pytest.fixture
async def deployed(
    w3: Web3Client, keys: list[LocalAccount], redis_url: str, tmp_path: Path
) -> AsyncIterator[Network]:
    """The contract with the provider's service registered; no gateway (account tests)."""
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    serving = await ServingClient.deploy(w3, keys[0], lock_time=LOCK_TIME)
    provider_key, registered_signer = keys[1], keys[2]
    await serving.as_sender(provider_key).add_or_update_service(
        ServiceParams(
            name=SERVICE,
            url="http://127.0.0.1:1/v1",
            model="zg-demo-1",
            input_price=INPUT_PRICE,
            output_price=OUTPUT_PRICE,
            signer_address=registered_signer.address,
        )
    )
    try:
        yield Network(
            rpc_url=str(w3.provider.endpoint_uri),
            contract=serving.address,
            provider=provider_key.address,
            provider_key=provider_key,
            registered_signer=registered_signer.address,
            gateway_url="",
            redis=redis,
            serving=serving,
            user_key=keys[8],
            state_dir=tmp_path / "zg-home",
        )
    finally:
        await redis.aclose()


@pytest.fixture
async def network(
    deployed: Network,
    keys: list[LocalAccount],
    redis_url: str,
    nats_url: str,
    gateway_receipt_key: LocalAccount,
    backend_knobs: dict[str, Any],
    more_backends: dict[str, str],
    gateway_knobs: dict[str, Any],
) -> AsyncIterator[Network]:
    """`deployed` plus the sample backend and a real gateway in front of it; the service
    registers the gateway's URL, as a provider does (the backend's stays gateway config)."""
    await fresh_streams(nats_url, deployed.rpc_url, deployed.contract)
    backend_settings = BackendSettings(port=free_port(), created=1_700_000_000, **backend_knobs)
    backend = await start_backend(backend_settings)
    settings = GatewaySettings(
        environment="test",
        provider_address=deployed.provider,
        receipt_private_key=gateway_receipt_key.key.hex(),
        redis_url=redis_url,
        nats_url=nats_url,
        rpc_url=deployed.rpc_url,
        serving_address=deployed.contract,
        backends={SERVICE: f"http://127.0.0.1:{backend_settings.port}/v1", **more_backends},
        default_max_output_units=100,
        rate_limit_per_s=0,
        health_port=0,
        log_json=False,
        **gateway_knobs,
    )
    server = TestServer(create_app(settings), port=free_port())
    await server.start_server()
    try:
        deployed.gateway_url = str(server.make_url("")).rstrip("/")
        deployed.gateway = server.app[GATEWAY_SERVICE]
        await deployed.reprice(url=deployed.gateway_url)
        yield deployed
    finally:
        await server.close()
        await backend.cleanup()


@dataclass
class ZgRun:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def run_zg(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: bytes = b""
) -> ZgRun:
    """The installed `zg` console script, as a user runs it."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "zg"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(cwd or Path.cwd()),
            # The compiled circuits and keys are cached per machine, not per HOME.
            CACHE_ENV: str(zk_cache_dir()),
            **(env or {}),
        },
        cwd=cwd,
    )
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return ZgRun(process.returncode, out.decode(), err.decode())


def zg_env(network: Network, key: LocalAccount | None = None) -> dict[str, str]:
    return {
        "ZG_RPC_URL": network.rpc_url,
        "ZG_CONTRACT": network.contract,
        "ZG_PRIVATE_KEY": (key or network.user_key).key.hex(),
        "ZG_HOME": str(network.state_dir),
        "ZG_PROVIDER": network.provider,
    }
