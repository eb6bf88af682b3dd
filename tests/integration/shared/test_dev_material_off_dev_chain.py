# SPDX-License-Identifier: Apache-2.0
"""On a chain that is not a local one (here anvil posing as Sepolia, chain id 11155111), the
services refuse anvil's keys even with ENVIRONMENT=development, the prover and zg-devnet refuse
the committed single-party circuit keys, and the gateway refuses the provider's own key as its
receipt key: each process exits with a line that says why, having done nothing on chain."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
from eth_account import Account as EthAccount

from zg_shared.chain import AnvilNode

SEPOLIA = 11155111
PROVIDER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil 1
RECEIPT_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil 2
OWN_KEY = "0x" + "7a" * 32
SOME_CONTRACT = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture(scope="module")
async def sepolia() -> AsyncIterator[AnvilNode]:
    async with AnvilNode(chain_id=SEPOLIA) as node:
        yield node


async def run(args: list[str], env: dict[str, str], timeout_s: float = 90.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode()


def service_env(prefix: str, node: AnvilNode, nats_url: str, redis_url: str) -> dict[str, str]:
    return {
        f"{prefix}ENVIRONMENT": "development",
        f"{prefix}RPC_URL": node.rpc_url,
        f"{prefix}NATS_URL": nats_url,
        f"{prefix}REDIS_URL": redis_url,
        f"{prefix}SERVING_ADDRESS": SOME_CONTRACT,
        f"{prefix}LOG_JSON": "false",
    }


async def test_billing_refuses_anvils_key_off_a_local_chain(
    sepolia: AnvilNode, nats_url: str, redis_url: str
) -> None:
    env = service_env("BILLING_", sepolia, nats_url, redis_url)
    code, out = await run(
        [sys.executable, "-m", "zg_billing"], {**env, "BILLING_PROVIDER_PRIVATE_KEY": PROVIDER_KEY}
    )
    assert code != 0
    assert "public development key, refused on chain id 11155111" in out
    assert PROVIDER_KEY[2:] not in out  # the key itself never reaches a log


async def test_gateway_refuses_anvils_key_and_the_providers_own_key(
    sepolia: AnvilNode, nats_url: str, redis_url: str
) -> None:
    env = service_env("GATEWAY_", sepolia, nats_url, redis_url)
    provider = EthAccount.from_key(OWN_KEY).address
    env |= {
        "GATEWAY_HTTP_PORT": "0",
        "GATEWAY_HEALTH_PORT": "0",
        "GATEWAY_PROVIDER_ADDRESS": provider,
    }
    gateway = [sys.executable, "-m", "zg_gateway"]
    code, out = await run(gateway, {**env, "GATEWAY_RECEIPT_PRIVATE_KEY": RECEIPT_KEY})
    assert code != 0
    assert "public development key, refused on chain id 11155111" in out
    code, out = await run(gateway, {**env, "GATEWAY_RECEIPT_PRIVATE_KEY": OWN_KEY})
    assert code != 0
    assert "the provider's own key" in out
    assert OWN_KEY[2:] not in out


async def test_prover_refuses_single_party_keys_off_a_local_chain(
    sepolia: AnvilNode, nats_url: str
) -> None:
    env = {
        "PROVER_ENVIRONMENT": "development",
        "PROVER_RPC_URL": sepolia.rpc_url,
        "PROVER_NATS_URL": nats_url,
        "PROVER_CIRCUIT_SIZE": "4",
        "PROVER_LOG_JSON": "false",
    }
    code, out = await run([sys.executable, "-m", "zg_prover"], env)
    assert code != 0
    assert "single-party setup" in out
    assert "refused on chain id 11155111" in out


async def test_zg_devnet_deploys_nothing_off_a_local_chain(sepolia: AnvilNode) -> None:
    w3 = sepolia.web3()
    deployer = sepolia.accounts[0]
    try:
        code, out = await run(
            [
                sys.executable, "-m", "zg_shared.chain.devnet", "--rpc-url", sepolia.rpc_url,
                "--deployer-key", deployer.private_key, "--provider-key", PROVIDER_KEY,
                "--receipt-signer", EthAccount.from_key(RECEIPT_KEY).address,
                "--out", os.devnull,
            ],
            {},
        )  # fmt: skip
        assert code == 2
        assert "single-party setup" in out
        assert await w3.eth.get_transaction_count(deployer.address) == 0
    finally:
        await w3.provider.disconnect()
