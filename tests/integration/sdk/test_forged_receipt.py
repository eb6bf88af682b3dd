# SPDX-License-Identifier: Apache-2.0
"""A gateway that signs receipts with a key other than the service's registered signer: the
SDK stops at the first receipt, writes the evidence, refuses to send more, and `zg verify`
rejects the evidence offline."""

from __future__ import annotations

import json

import openai
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.sdk.conftest import DEPOSIT, SERVICE, Network, run_zg, zg_env
from zgserve import Evidence, ProviderStopped, VerificationError, verify_evidence


@pytest.fixture
def gateway_receipt_key(keys: list[LocalAccount]) -> LocalAccount:
    return keys[3]  # the service registered keys[2]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_forged_receipt_stops_the_provider_with_evidence(
    network: Network, stream: bool
) -> None:
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        messages: list[openai.types.chat.ChatCompletionMessageParam] = [
            {"role": "user", "content": "hello there"}
        ]

        async def ask() -> None:
            if not stream:
                await ai.chat.completions.create(model="zg-demo-1", messages=messages)
                return
            chunks = await ai.chat.completions.create(
                model="zg-demo-1", messages=messages, stream=True
            )
            async for _ in chunks:
                pass

        with pytest.raises(VerificationError, match="not by the service's registered") as caught:
            await ask()

        assert caught.value.provider == network.provider
        path = caught.value.evidence_path
        assert path is not None
        assert path.exists()
        evidence = Evidence.read(path)
        assert evidence.failure is not None
        assert [f.ok for f in verify_evidence(evidence)] == [False]
        # Nothing more goes to this provider, and its disputed fee is not offered.
        with pytest.raises(ProviderStopped):
            await ai.chat.completions.create(model="zg-demo-1", messages=messages)
        assert zg.unpaid(network.provider) == 0

    result = await run_zg("--json", "verify", str(path), cwd=network.state_dir)
    assert result.code == 3, result.stderr
    report = result.json()
    assert report["valid"] is False
    assert "registered signer" in report["failed"][0]["reason"]


async def test_zg_chat_exits_3_and_names_the_evidence(network: Network) -> None:
    env = {**zg_env(network), "ZG_SERVICE": SERVICE}
    cwd = network.state_dir.parent
    created = await run_zg("account", "create", "--deposit", str(DEPOSIT), env=env, cwd=cwd)
    assert created.code == 0, created.stderr

    chat = await run_zg("--json", "chat", "hello there", env=env, cwd=cwd)

    assert chat.code == 3, chat.stderr
    error = json.loads(chat.stderr.strip().splitlines()[-1])
    assert "failed verification" in error["error"]
    [written] = (network.state_dir / "evidence").glob("evidence-*.json")
    assert str(written) in error["error"]
    assert (await run_zg("verify", str(written), env=env, cwd=cwd)).code == 3
