# SPDX-License-Identifier: Apache-2.0
"""`scripts/zk_setup.py --arkworks-dev` keys (groth16py single-party setup, N=4 here): groth16py
proves with them, snarkjs verifies under the exported key, and the Solidity verifier rendered
from that key and compiled by `compile_verifier` accepts the proof on anvil (and a settleFees
against a Serving wired to it pays). The committed verifier rejects it: another key."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.zk.conftest import ROOT, SIZE
from zg_shared.chain import (
    ServingClient,
    SettlementProof,
    Web3Client,
    deploy_contract,
    load_artifact,
)
from zg_shared.crypto import prv2pub, sign_request
from zg_shared.scripts import script_module
from zg_shared.zk import Groth16Proof, SignedRequest, Snarkjs, build_chunk_input
from zg_shared.zk.keys import KeySet, ensure_dev_keys
from zg_shared.zk.pipeline import ProvingPipeline

pytestmark = pytest.mark.slow
VERIFY_GAS = 500_000


def _zk_setup() -> Any:
    return script_module(ROOT / "scripts" / "zk_setup.py")


@pytest.fixture(scope="module")
def dev_keys() -> KeySet:
    pytest.importorskip("groth16py")
    return ensure_dev_keys(SIZE)


PRV = bytes(range(32))  # the user's request-signing key (BabyJubJub)


@pytest.fixture(scope="module")
def dev_prover(dev_keys: KeySet) -> ProvingPipeline:
    from zg_shared.zk.arkworks import ArkworksStep

    assert dev_keys.dev
    assert dev_keys.key_format == "groth16py"
    return ProvingPipeline(dev_keys, ArkworksStep(dev_keys))


def prove(prover: ProvingPipeline, user: str, provider: str, nonces: range) -> Groth16Proof:
    requests = [
        SignedRequest.from_signature_hex(
            user=user,
            provider=provider,
            nonce=n,
            fee=100 * n,
            signature=sign_request(PRV, user, provider, n, 100 * n).to_hex(),
        )
        for n in nonces
    ]
    chunk = build_chunk_input(requests, prv2pub(PRV).as_tuple(), SIZE)
    proof: Groth16Proof = prover.prove_chunk(chunk).proof  # verified locally by the prover
    assert proof.public_signals == chunk.public_inputs()
    return proof


def test_snarkjs_verifies_under_the_exported_key(
    dev_keys: KeySet, dev_prover: ProvingPipeline, snarkjs: Snarkjs
) -> None:
    proof = prove(dev_prover, "0x" + "11" * 20, "0x" + "22" * 20, range(1, 4))
    assert snarkjs.verify(dev_keys.vkey, proof)
    committed = ROOT / "circuits" / "keys" / f"settle_batch_{SIZE}" / "verification_key.json"
    assert not snarkjs.verify(committed, proof)


async def test_rendered_verifier_accepts_on_chain_and_serving_settles(
    dev_keys: KeySet, dev_prover: ProvingPipeline, w3: Web3Client, keys: list[LocalAccount]
) -> None:
    assert dev_keys.verifier_sol is not None
    path = _zk_setup().compile_verifier(dev_keys.verifier_sol, SIZE)
    artifact = load_artifact(f"SettleBatchVerifier{SIZE}", path.parent)
    deployed = await deploy_contract(w3, keys[0], artifact)
    assert deployed.contract_address is not None
    verifier = w3.eth.contract(address=deployed.contract_address, abi=artifact.abi)
    user, provider = keys[-1], keys[1]
    proof = prove(dev_prover, user.address, provider.address, range(1, 4))
    a, b, c, inputs = proof.to_calldata()
    assert await verifier.functions.verifyProof(a, b, c, inputs).call({"gas": VERIFY_GAS})
    more_fee = (*inputs[:4], inputs[4] + 1, *inputs[5:])
    assert not await verifier.functions.verifyProof(a, b, c, more_fee).call({"gas": VERIFY_GAS})

    committed = await deploy_contract(w3, keys[0], load_artifact(f"SettleBatchVerifier{SIZE}"))
    other = w3.eth.contract(address=committed.contract_address, abi=artifact.abi)
    assert not await other.functions.verifyProof(a, b, c, inputs).call({"gas": VERIFY_GAS})

    # A fresh Serving wired to the dev verifier pays the provider for the chunk.
    serving = await ServingClient.deploy(
        w3, keys[0], lock_time=3600, verifiers={SIZE: deployed.contract_address}
    )
    signer = prv2pub(PRV).as_tuple()
    await serving.as_sender(user).add_account(provider.address, signer, value=10**18)
    await serving.as_sender(provider).settle_fees(
        [SettlementProof(circuit_size=SIZE, a=a, b=b, c=c, public_inputs=inputs)]
    )
    account = await serving.get_account(user.address, provider.address)
    assert account.nonce == 3
    assert account.balance == 10**18 - 600
