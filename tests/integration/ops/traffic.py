# SPDX-License-Identifier: Apache-2.0
"""Paid traffic as a user sends it: the SDK creates the account, signs and verifies every
request through the official openai client, pays the last output fee, then waits until
billing has settled everything on chain."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import openai

from zg_shared.chain import FeesSettled, ServingClient, checksum, connect
from zg_shared.localnet import LocalNetwork
from zgserve import ZgClient
from zgserve.evidence import EvidenceRecord

DEPOSIT = 10**16


@dataclass(frozen=True)
class Traffic:
    user: str
    wallet_key: str
    signing_key: bytes
    provider: str
    records: list[EvidenceRecord]  # every request the user sent, with its receipt
    settlements: list[FeesSettled]  # the user's FeesSettled events


async def settled_for(net: LocalNetwork, user: str) -> list[FeesSettled]:
    assert net.anvil is not None
    assert net.deployment is not None
    w3 = connect(net.anvil.rpc_url)
    try:
        serving = ServingClient(w3, net.deployment.serving)
        events = await serving.get_events(0, await w3.eth.block_number)
    finally:
        await w3.provider.disconnect()
    return [e for e in events if isinstance(e, FeesSettled) and e.user == user]


async def send_paid_requests(
    net: LocalNetwork,
    user_index: int,
    requests: int,
    home: Path,
    gateway_url: str | None = None,
    within_s: float = 240.0,
) -> Traffic:
    """`requests` chats and the fee-only request paying the last output fee, all settled."""
    assert net.anvil is not None
    assert net.deployment is not None
    deployment = net.deployment
    provider = checksum(deployment.provider)
    service = deployment.services[0]
    key = net.accounts[user_index].private_key
    async with ZgClient(net.anvil.rpc_url, deployment.serving, key, state_dir=home) as zg:
        await zg.create_account(provider, deposit=DEPOSIT)
        session = await zg.session(provider, service.name, gateway_url or net.gateway_url)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        for i in range(requests):
            reply = await ai.chat.completions.create(
                model=session.service.model,
                messages=[{"role": "user", "content": f"observe request {i}"}],
            )
            assert reply.choices[0].message.content
        await zg.settle(provider)
        state = await zg.provider_state(provider)
        records = list(state.records)
        last_nonce = max(r.nonce for r in records)
        deadline = asyncio.get_running_loop().time() + within_s
        while (await zg.account(provider)).nonce < last_nonce:
            assert asyncio.get_running_loop().time() < deadline, (
                f"not settled in {within_s}s; logs in {net.workdir / 'logs'}"
            )
            await asyncio.sleep(0.5)
        return Traffic(
            user=zg.address,
            wallet_key=key,
            signing_key=state.signing_key,
            provider=provider,
            records=records,
            settlements=await settled_for(net, zg.address),
        )
