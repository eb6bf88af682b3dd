# SPDX-License-Identifier: Apache-2.0
"""An open gap, reproduced (docs/security.md): a provider that refuses a request still holds
its signature, and the contract settles any signed request. The SDK, told 409 `nonce_reused`,
signs again with a fresh nonce and the same debt; the provider settles every signature on
chain with a real proof, so the user pays the refused requests' input fees and the same debt
three times. Closing it needs signatures that cannot add up (a cumulative amount signed, the
contract charging the highest one less what it settled), a circuit and contract change."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis

from tests.conftest import deploy_proving_serving
from tests.integration.sdk.conftest import DEPOSIT, INPUT_PRICE, OUTPUT_PRICE, SERVICE, Network
from tests.integration.sdk.dishonest import Answer, Asked, DishonestProvider
from tests.integration.sdk.test_dishonest_provider import _ask
from zg_prover.backends import select_backend
from zg_prover.service import ProverService
from zg_shared.chain import ServiceParams, Web3Client
from zg_shared.events import UserBatch
from zg_shared.zk import SignedRequest

pytestmark = pytest.mark.slow


async def _honest(asked: Asked) -> Answer:
    return Answer("one two three", 3, 3 * OUTPUT_PRICE)


@pytest.mark.xfail(strict=True, reason="open: a refused request's signature settles on chain")
async def test_refused_requests_are_settled_on_chain(
    w3: Web3Client, keys: list[LocalAccount], redis_url: str, tmp_path: Path
) -> None:
    serving = await deploy_proving_serving(w3, keys[0])
    provider_key, receipt_key = keys[1], keys[2]
    dishonest = DishonestProvider(provider_key.address, receipt_key, _honest)
    await dishonest.start()
    await serving.as_sender(provider_key).add_or_update_service(
        ServiceParams(
            name=SERVICE,
            url=dishonest.url,
            model="zg-demo-1",
            input_price=INPUT_PRICE,
            output_price=OUTPUT_PRICE,
            signer_address=receipt_key.address,
        )
    )
    redis = Redis.from_url(redis_url)
    network = Network(
        str(w3.provider.endpoint_uri), serving.address, provider_key.address, provider_key,
        receipt_key.address, "", redis, serving, keys[8], tmp_path / "zg-home",
    )  # fmt: skip
    try:
        async with network.client() as zg:
            await zg.create_account(network.provider, deposit=DEPOSIT)
            await _ask(zg, network, False)  # served: 3 units owed
            debt = zg.unpaid(network.provider)
            dishonest.refusals = [(409, "nonce_reused"), (409, "nonce_reused")]
            await _ask(zg, network, False)  # refused twice, then served
            await zg.close(settle=False)
            signer = (await serving.get_account(zg.address, network.provider)).signer
        user = zg.address
    finally:
        await dishonest.close()
        await redis.aclose()
    asked = dishonest.asked
    assert [a.previous_output_fee for a in asked] == [0, debt, debt, debt]
    served_fees = asked[0].fee + asked[3].fee  # what the user agreed to pay
    requests = tuple(
        SignedRequest.from_signature_hex(
            user=user, provider=network.provider, nonce=a.nonce, fee=a.fee, signature=a.signature
        )
        for a in asked
    )
    prover = ProverService(select_backend("auto", [4]))
    batch = UserBatch(user=user, signer=signer, requests=requests)
    proofs = [p.calldata for p in await prover.prove_batch(network.provider, batch, 4)]
    await serving.as_sender(provider_key).settle_fees(proofs)
    account = await serving.get_account(user, network.provider)
    charged = DEPOSIT - account.balance
    assert charged == served_fees  # today 260 wei for 100 served: the refused ones settle too
