# SPDX-License-Identifier: Apache-2.0
"""Proofs with the committed SettleBatch(4) keys: snarkjs verifies them, the generated Solidity
verifier accepts them in to_calldata()'s form, and Serving.settleFees pays against them."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.zk.conftest import KEY_A, ROOT, SIZE, Point, sign
from zg_shared.chain import (
    ContractArtifact,
    ContractRevert,
    FeesSettled,
    ServingClient,
    SettlementProof,
    Web3Client,
    deploy_contract,
)
from zg_shared.zk import (
    ChunkInput,
    Groth16Proof,
    SignedRequest,
    Snarkjs,
    build_chunk_input,
)
from zg_shared.zk.keys import KeySet
from zg_shared.zk.pipeline import ProvingPipeline
from zg_shared.zk.snarkjs import SnarkjsStep
from zg_shared.zk.witness import WasmWitness

pytestmark = pytest.mark.slow

VERIFIER_SOURCES = [
    f"contracts/src/verifiers/SettleBatchVerifier{SIZE}.sol",
    "contracts/src/interfaces/ISettlementVerifier.sol",
]
LOCK_TIME = 3600
# Past what the pairing needs: with too little gas the precompile fails and the verifier
# returns false instead of reverting (TOOLCHAIN.md).
VERIFY_GAS = 500_000


def snarkjs_pipeline(keys: KeySet, snarkjs: Snarkjs) -> ProvingPipeline:
    """The reference route end to end: node witness, snarkjs proof, snarkjs verify."""
    return ProvingPipeline(
        keys, SnarkjsStep(keys.key, keys.vkey, snarkjs), WasmWitness(keys.build.wasm, snarkjs)
    )


def compile_verifier() -> ContractArtifact:
    standard_json = {
        "language": "Solidity",
        "sources": {src: {"content": (ROOT / src).read_text()} for src in VERIFIER_SOURCES},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": "cancun",
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    proc = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "solcjs"), "--standard-json"],
        input=json.dumps(standard_json),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    output = json.loads(proc.stdout[proc.stdout.find("{") :])
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    assert not errors, errors
    compiled = output["contracts"][VERIFIER_SOURCES[0]][f"SettleBatchVerifier{SIZE}"]
    return ContractArtifact(
        contract_name=f"SettleBatchVerifier{SIZE}",
        abi=compiled["abi"],
        bytecode="0x" + compiled["evm"]["bytecode"]["object"],
    )


def to_settlement(proof: Groth16Proof) -> SettlementProof:
    a, b, c, inputs = proof.to_calldata()
    return SettlementProof.model_validate(
        {"circuit_size": SIZE, "a": a, "b": b, "c": c, "public_inputs": inputs}
    )


@pytest.fixture(scope="module")
def user_and_provider(keys: list[LocalAccount]) -> tuple[int, int]:
    """The dev accounts that the on-chain test uses as user (5) and provider (1)."""
    return int(keys[5].address, 16), int(keys[1].address, 16)


@pytest.fixture(scope="module")
def requests(user_and_provider: tuple[int, int]) -> tuple[Point, list[SignedRequest]]:
    user, provider = user_and_provider
    return sign(KEY_A, [(user, provider, n, 1000 + n) for n in range(1, 8)])


@pytest.fixture(scope="module")
def full_chunk(requests: tuple[Point, list[SignedRequest]]) -> ChunkInput:
    pub, reqs = requests
    return build_chunk_input(reqs[:4], pub, SIZE)


@pytest.fixture(scope="module")
def partial_chunk(requests: tuple[Point, list[SignedRequest]]) -> ChunkInput:
    pub, reqs = requests
    return build_chunk_input(reqs[4:6], pub, SIZE)


@pytest.fixture(scope="module")
def full_proof(snarkjs: Snarkjs, artifacts: KeySet, full_chunk: ChunkInput) -> Groth16Proof:
    return snarkjs_pipeline(artifacts, snarkjs).prove_chunk(full_chunk).proof


@pytest.fixture(scope="module")
def partial_proof(snarkjs: Snarkjs, artifacts: KeySet, partial_chunk: ChunkInput) -> Groth16Proof:
    return snarkjs_pipeline(artifacts, snarkjs).prove_chunk(partial_chunk).proof


# ------------------------------------------------------------------ snarkjs


def test_committed_keys_match_the_circuit() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/zk_setup.py", "--size", str(SIZE), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_full_chunk_proof_verifies(
    snarkjs: Snarkjs, artifacts: KeySet, full_chunk: ChunkInput, full_proof: Groth16Proof
) -> None:
    assert full_proof.public_signals == full_chunk.public_inputs()
    assert snarkjs.verify(artifacts.vkey, full_proof)


def test_partial_chunk_proof_verifies(
    snarkjs: Snarkjs,
    artifacts: KeySet,
    partial_chunk: ChunkInput,
    partial_proof: Groth16Proof,
) -> None:
    assert partial_chunk.count == 2
    assert partial_proof.public_signals == partial_chunk.public_inputs()
    assert snarkjs.verify(artifacts.vkey, partial_proof)


@pytest.mark.parametrize("index", range(7))
def test_a_changed_public_input_fails_verification(
    snarkjs: Snarkjs, artifacts: KeySet, full_proof: Groth16Proof, index: int
) -> None:
    signals = list(full_proof.public_signals)
    signals[index] += 1
    tampered = full_proof.model_copy(update={"public_signals": signals})
    assert not snarkjs.verify(artifacts.vkey, tampered)


def test_proof_bytes_round_trip(full_proof: Groth16Proof) -> None:
    blob = full_proof.to_bytes()
    assert Groth16Proof.from_bytes(blob, full_proof.public_signals) == full_proof


# ------------------------------------------------------------------ on chain


@pytest.fixture(scope="module")
def verifier_artifact() -> ContractArtifact:
    return compile_verifier()


@pytest.fixture
async def verifier(
    w3: Web3Client, keys: list[LocalAccount], verifier_artifact: ContractArtifact
) -> Any:
    result = await deploy_contract(w3, keys[0], verifier_artifact)
    return w3.eth.contract(address=result.contract_address, abi=verifier_artifact.abi)


async def test_solidity_verifier_accepts_calldata(
    verifier: Any, full_proof: Groth16Proof, partial_proof: Groth16Proof
) -> None:
    for proof in (full_proof, partial_proof):
        a, b, c, inputs = proof.to_calldata()
        assert await verifier.functions.verifyProof(a, b, c, inputs).call({"gas": VERIFY_GAS})


async def test_solidity_verifier_rejects_tampering(verifier: Any, full_proof: Groth16Proof) -> None:
    a, b, c, inputs = full_proof.to_calldata()
    fn = verifier.functions.verifyProof
    more_fee = (*inputs[:4], inputs[4] + 1, *inputs[5:])
    assert not await fn(a, b, c, more_fee).call({"gas": VERIFY_GAS})
    # snarkjs's own G2 order (not reversed) is not what the precompile takes.
    assert not await fn(a, full_proof.pi_b, c, inputs).call({"gas": VERIFY_GAS})


async def test_solidity_verifier_refuses_malleable_and_malformed_input(
    verifier: Any, full_proof: Groth16Proof
) -> None:
    """An input plus the scalar field's order is the same number to the pairing: accepting it
    would let one proof settle under two encodings. Coordinates outside the base field, a point
    off the curve and a negated A all give false, never a revert."""
    from zg_shared.zk.solidity_verifier import FIELD_Q, FIELD_R

    a, b, c, inputs = full_proof.to_calldata()
    fn = verifier.functions.verifyProof
    for i in range(len(inputs)):
        shifted = (*inputs[:i], inputs[i] + FIELD_R, *inputs[i + 1 :])
        if shifted[i] < 2**256:
            assert not await fn(a, b, c, shifted).call({"gas": VERIFY_GAS}), i
    cases = [
        ((a[0] + FIELD_Q, a[1]), b, c),
        ((a[0], FIELD_Q - a[1]), b, c),  # -A
        ((a[0], a[1] + 1), b, c),  # off the curve
        (a, b, (c[0], c[1] + FIELD_Q)),
        (a, ((b[0][0] + FIELD_Q, b[0][1]), b[1]), c),
        ((0, 0), b, c),  # the point at infinity
    ]
    for pa, pb, pc in cases:
        assert not await fn(pa, pb, pc, inputs).call({"gas": VERIFY_GAS}), (pa, pb, pc)
    assert await fn(a, b, c, inputs).call({"gas": VERIFY_GAS})


async def test_serving_settles_against_a_real_proof(
    w3: Web3Client,
    keys: list[LocalAccount],
    verifier: Any,
    requests: tuple[Point, list[SignedRequest]],
    full_chunk: ChunkInput,
    full_proof: Groth16Proof,
    partial_chunk: ChunkInput,
    partial_proof: Groth16Proof,
) -> None:
    user, provider = keys[5], keys[1]
    pub, _ = requests
    serving = await ServingClient.deploy(
        w3, keys[0], lock_time=LOCK_TIME, verifiers={SIZE: verifier.address}
    )
    await serving.as_sender(user).add_account(provider.address, pub, value=10**6)
    as_provider = serving.as_sender(provider)

    # Both chunks in one call; settleFees is estimated as a whole, so the pairing gets its gas.
    result = await as_provider.settle_fees(
        [to_settlement(full_proof), to_settlement(partial_proof)]
    )
    settled = result.events_of(FeesSettled)
    assert [e.amount for e in settled] == [full_chunk.total_fee, partial_chunk.total_fee]
    account = await serving.get_account(user.address, provider.address)
    assert account.nonce == partial_chunk.final_nonce
    assert account.balance == 10**6 - full_chunk.total_fee - partial_chunk.total_fee
    print(f"settleFees with 2 SettleBatch({SIZE}) proofs: {result.gas_used} gas")

    # The same proof again: its initNonce is no longer above the account's nonce.
    with pytest.raises(ContractRevert) as err:
        await as_provider.settle_fees([to_settlement(full_proof)])
    assert err.value.name == "ServingNonceTooLow"


# ------------------------------------------------------------------ optional arkworks prover


async def test_arkworks_prover_proofs_verify_everywhere(
    snarkjs: Snarkjs, artifacts: KeySet, verifier: Any, partial_chunk: ChunkInput
) -> None:
    pytest.importorskip("groth16py")
    from zg_shared.zk.arkworks import ArkworksStep

    proof = ProvingPipeline(artifacts, ArkworksStep(artifacts)).prove_chunk(partial_chunk).proof
    assert proof.public_signals == partial_chunk.public_inputs()
    assert snarkjs.verify(artifacts.vkey, proof)
    a, b, c, inputs = proof.to_calldata()
    assert await verifier.functions.verifyProof(a, b, c, inputs).call({"gas": VERIFY_GAS})
