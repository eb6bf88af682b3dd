# SPDX-License-Identifier: Apache-2.0
"""A real engine behind the gateway: llama-cpp-python's server with a tiny model the test writes
(no download), and the whole network as processes (`zg_shared.localnet`: chain, NATS, Redis,
gateway, billing, prover, indexer), the gateway's backend for two services pointed at the
engine. Users pay through the SDK with the official openai client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
from eth_account import Account as EthAccount

from tests.integration.llama.server import CHAT_MODEL, CONTEXT, EMBED_MODEL, LlamaServer
from tests.integration.llama.tiny_model import write_tiny_llama
from zg_shared.chain import ServiceParams, ServingClient, Web3Client, checksum, connect
from zg_shared.localnet import LocalNetwork
from zgserve import ServiceSession, ZgClient

CHAT_SERVICE = "llama-chat"
EMBED_SERVICE = "llama-embed"
INPUT_PRICE = 10**9
OUTPUT_PRICE = 2 * 10**9
DEPOSIT = 10**17
FIRST_USER = 5  # anvil accounts 0-2 are the deployer, the provider and the receipt signer


@dataclass
class User:
    zg: ZgClient
    chat: openai.AsyncOpenAI
    embed: openai.AsyncOpenAI
    embed_session: ServiceSession  # the SDK's paying client, for bodies openai will not send


@dataclass
class LlamaNetwork:
    net: LocalNetwork
    w3: Web3Client
    serving: ServingClient
    llama: LlamaServer
    provider: str
    workdir: Path
    evidence: list[Path] = field(default_factory=list)
    _next_user: int = FIRST_USER

    @contextlib.asynccontextmanager
    async def user(self) -> AsyncIterator[User]:
        """A new user with an account, paying through the SDK; on leaving, the last output
        fee is paid (fee-only request) and the evidence written for the settlement check."""
        index, self._next_user = self._next_user, self._next_user + 1
        key = self.net.accounts[index].private_key
        zg = ZgClient(
            self.net.anvil.rpc_url if self.net.anvil else "",
            self.serving.address,
            key,
            state_dir=self.workdir / f"user-{index}",
        )
        async with zg:
            await zg.create_account(self.provider, deposit=DEPOSIT)
            sessions = [
                await zg.session(self.provider, name, self.net.gateway_url)
                for name in (CHAT_SERVICE, EMBED_SERVICE)
            ]
            clients = [
                openai.AsyncOpenAI(
                    base_url=s.base_url, api_key="zg", http_client=s.http, max_retries=0
                )
                for s in sessions
            ]
            yield User(zg, clients[0], clients[1], sessions[1])
        self.evidence.append(
            zg.export_evidence(self.provider, self.workdir / f"evidence-{index}.json")
        )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Written once per session (~0.1 s, under 1 MB each)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    return (
        write_tiny_llama(folder / "chat.gguf"),
        write_tiny_llama(folder / "embed.gguf", embeddings=True),
    )


@pytest.fixture(scope="session")
async def llama(
    tiny_models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaServer]:
    server = LlamaServer(*tiny_models, tmp_path_factory.mktemp("llama-server"))
    try:
        server.launch()
        await server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def network(
    llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaNetwork]:
    workdir = tmp_path_factory.mktemp("llama-network")
    backends = {CHAT_SERVICE: llama.url, EMBED_SERVICE: llama.url}
    net = LocalNetwork(
        workdir,
        circuit_sizes=(4,),  # the committed keys: proofs in ~1 s
        overrides={
            "GATEWAY_BACKENDS": json.dumps(backends),
            "GATEWAY_MODEL_CONTEXT_TOKENS": json.dumps({CHAT_SERVICE: CONTEXT}),
            "GATEWAY_RATE_LIMIT_PER_S": "0",
            "BILLING_THRESHOLD_FEE_WEI": "1",
            "BILLING_TICK_S": "0.3",
        },
    )
    try:
        await net.start()
        assert net.anvil is not None
        assert net.deployment is not None
        w3 = connect(net.anvil.rpc_url)
        serving = ServingClient(w3, net.deployment.serving)
        provider = EthAccount.from_key(net.accounts[1].private_key)
        signer = EthAccount.from_key(net.accounts[2].private_key)
        for name, model in ((CHAT_SERVICE, CHAT_MODEL), (EMBED_SERVICE, EMBED_MODEL)):
            await serving.as_sender(provider).add_or_update_service(
                ServiceParams(
                    name=name,
                    url=net.gateway_url,  # users reach the gateway; the engine stays private
                    model=model,
                    input_price=INPUT_PRICE,
                    output_price=OUTPUT_PRICE,
                    signer_address=signer.address,
                )
            )
        yield LlamaNetwork(net, w3, serving, llama, checksum(provider.address), workdir)
        await w3.provider.disconnect()
    finally:
        await net.stop()
