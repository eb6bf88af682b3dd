# SPDX-License-Identifier: Apache-2.0
"""settleFees with real Groth16 proofs of the committed SettleBatch(4) circuit."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.conftest import LOCK_TIME, deploy_proving_serving
from zg_prover.backends import select_backend
from zg_prover.service import ProverService
from zg_shared.chain import (
    ContractRevert,
    DevChain,
    FeesSettled,
    RefundReduced,
    ServingClient,
    SettlementProof,
    Web3Client,
)
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.events import UserBatch
from zg_shared.zk import SignedRequest

pytestmark = pytest.mark.slow
N = 4


@pytest.fixture(scope="module")
def prover() -> ProverService:
    return ProverService(select_backend("auto", [N]))


@pytest.fixture
async def serving(w3: Web3Client, keys: list[LocalAccount]) -> ServingClient:
    return await deploy_proving_serving(w3, keys[0])


class Account:
    def __init__(self, key: LocalAccount) -> None:
        self.key = key
        self.prv = generate_private_key()

    @property
    def signer(self) -> tuple[int, int]:
        return prv2pub(self.prv).as_tuple()


async def open_account(serving: ServingClient, user: Account, provider: str, deposit: int) -> None:
    await serving.as_sender(user.key).add_account(provider, user.signer, value=deposit)


async def prove(
    prover: ProverService,
    user: Account,
    provider: str,
    nonces: range,
    fee: int,
    signer: Account | None = None,
) -> list[SettlementProof]:
    """Chunk proofs for `nonces`, signed by `signer` (default: the user's own key)."""
    by = signer or user
    requests = tuple(
        SignedRequest.from_signature_hex(
            user=user.key.address,
            provider=provider,
            nonce=n,
            fee=fee,
            signature=sign_request(by.prv, user.key.address, provider, n, fee).to_hex(),
        )
        for n in nonces
    )
    batch = UserBatch(user=user.key.address, signer=by.signer, requests=requests)
    return [p.calldata for p in await prover.prove_batch(provider, batch, N)]


async def test_one_call_settles_several_chunks_of_several_users(
    w3: Web3Client, serving: ServingClient, keys: list[LocalAccount], prover: ProverService
) -> None:
    provider = keys[1]
    alice, bob = Account(keys[5]), Account(keys[6])
    await open_account(serving, alice, provider.address, 10_000)
    await open_account(serving, bob, provider.address, 10_000)
    proofs = await prove(prover, alice, provider.address, range(1, 7), 100)  # 2 chunks
    proofs += await prove(prover, bob, provider.address, range(3, 5), 250)
    before = await w3.eth.get_balance(provider.address)

    result = await serving.as_sender(provider).settle_fees(proofs)

    assert await w3.eth.get_balance(provider.address) == before + 600 + 500 - result.fee_paid
    assert [(e.user, e.amount, e.final_nonce) for e in result.events_of(FeesSettled)] == [
        (alice.key.address, 400, 4),
        (alice.key.address, 200, 6),
        (bob.key.address, 500, 4),
    ]
    a = await serving.get_account(alice.key.address, provider.address)
    b = await serving.get_account(bob.key.address, provider.address)
    assert (a.balance, a.nonce, b.balance, b.nonce) == (9_400, 6, 9_500, 4)
    assert await w3.eth.get_balance(serving.address) == 9_400 + 9_500


async def test_fees_beyond_the_free_balance_come_from_the_open_refund(
    serving: ServingClient, keys: list[LocalAccount], prover: ProverService
) -> None:
    provider = keys[1]
    alice = Account(keys[5])
    await open_account(serving, alice, provider.address, 1_000)
    user = serving.as_sender(alice.key)
    await user.request_refund(provider.address, 300)
    await user.request_refund(provider.address, 500)  # added to the open refund: 800
    proofs = await prove(prover, alice, provider.address, range(1, 5), 200)  # 800 in fees; 200 free

    result = await serving.as_sender(provider).settle_fees(proofs)

    account = await serving.get_account(alice.key.address, provider.address)
    assert (account.balance, account.pending_refund) == (200, 200)
    assert [(r.amount, r.processed) for r in account.refunds] == [(200, False)]
    assert [(e.index, e.remaining) for e in result.events_of(RefundReduced)] == [(0, 200)]


# What a flood may add to one chunk's settlement over the same chunk of a user who asked for
# one refund: calldata and cold-slot differences only. Before refunds merged, each pending
# refund the charge walked cost about 9.3k gas (issue 11 item 1: 1,000 of them, 9.4M gas).
FLOOD_MARGIN_GAS = 5_000
FLOOD_REFUNDS = 200


async def test_a_refund_flood_leaves_settlement_gas_where_one_refund_puts_it(
    chain: DevChain, serving: ServingClient, keys: list[LocalAccount], prover: ProverService
) -> None:
    """A user asks for `available - K` and then K refunds of 1 wei (and has paid-out refunds
    behind them): the chunk that draws on them costs what it costs after a single refund."""
    provider = keys[1]
    honest, flooder = Account(keys[5]), Account(keys[6])
    await open_account(serving, honest, provider.address, 10_000)
    await open_account(serving, flooder, provider.address, 10_003)
    as_flooder = serving.as_sender(flooder.key)
    for paid_out in range(3):  # refunds paid out: history the charge must not walk either
        await as_flooder.request_refund(provider.address, 1)
        await chain.increase_time(LOCK_TIME)
        await as_flooder.process_refund(provider.address, [paid_out])
    await serving.as_sender(honest.key).request_refund(provider.address, 9_700)
    await as_flooder.request_refund(provider.address, 9_700 - FLOOD_REFUNDS)
    for _ in range(FLOOD_REFUNDS):
        await as_flooder.request_refund(provider.address, 1)
    proofs_honest = await prove(prover, honest, provider.address, range(1, 5), 200)
    proofs_flooder = await prove(prover, flooder, provider.address, range(1, 5), 200)
    as_provider = serving.as_sender(provider)

    normal = await as_provider.settle_fees(proofs_honest)
    flooded = await as_provider.settle_fees(proofs_flooder)

    print(
        f"settleFees, one chunk of 4: after 1 refund request {normal.gas_used} gas, "
        f"after {FLOOD_REFUNDS + 1} {flooded.gas_used} gas"
    )
    assert flooded.gas_used <= normal.gas_used + FLOOD_MARGIN_GAS
    for user, result in ((honest, normal), (flooder, flooded)):
        account = await serving.get_account(user.key.address, provider.address)
        # 800 in fees, 300 free: 500 came out of the one open refund.
        assert (account.balance, account.pending_refund) == (9_200, 9_200)
        assert [e.remaining for e in result.events_of(RefundReduced)] == [9_200]
        assert sum(not r.processed for r in account.refunds) == 1


async def test_after_a_rotation_both_keys_settle_until_the_replaced_one_expires(
    w3: Web3Client,
    chain: DevChain,
    serving: ServingClient,
    keys: list[LocalAccount],
    prover: ProverService,
) -> None:
    """The provider is paid for what the old key signed before it saw the rotation, in the
    same call as what the new key signed; once the old key's window has passed, a chunk it
    signed is refused."""
    provider = keys[1]
    alice = Account(keys[5])
    rotated = Account(keys[5])  # the same user with a new signing key
    await open_account(serving, alice, provider.address, 10_000)
    old_signed = await prove(prover, alice, provider.address, range(1, 3), 100)
    await serving.as_sender(alice.key).rotate_signer(provider.address, rotated.signer)
    new_signed = await prove(prover, alice, provider.address, range(3, 5), 100, signer=rotated)
    too_late = await prove(prover, alice, provider.address, range(5, 7), 100)
    before = await w3.eth.get_balance(provider.address)

    result = await serving.as_sender(provider).settle_fees([*old_signed, *new_signed])

    assert [(e.amount, e.final_nonce) for e in result.events_of(FeesSettled)] == [
        (200, 2),
        (200, 4),
    ]
    assert await w3.eth.get_balance(provider.address) == before + 400 - result.fee_paid
    account = await serving.get_account(alice.key.address, provider.address)
    assert (account.balance, account.nonce) == (9_600, 4)

    await chain.increase_time(LOCK_TIME)
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(provider).settle_fees(too_late)
    assert err.value.name == "ServingSignerMismatch"
    assert (await serving.get_account(alice.key.address, provider.address)).nonce == 4


@pytest.mark.parametrize(
    "case", ["forged", "other_user_key", "other_provider", "replayed", "overlap", "too_much"]
)
async def test_an_invalid_chunk_reverts_the_whole_call(
    w3: Web3Client,
    serving: ServingClient,
    keys: list[LocalAccount],
    prover: ProverService,
    case: str,
) -> None:
    provider = keys[1]
    alice, mallory = Account(keys[5]), Account(keys[6])
    await open_account(serving, alice, provider.address, 1_000)
    await open_account(serving, mallory, provider.address, 1_000)
    good = await prove(prover, alice, provider.address, range(1, 3), 10)
    if case == "forged":
        proof = good[0]
        bad = [proof.model_copy(update={"a": (proof.a[0], proof.a[1] ^ 1)})]
        expected = {"ServingInvalidProof", ""}
    elif case == "other_user_key":
        # Mallory signs Alice's requests with her own key: the signer is not Alice's.
        bad = await prove(prover, alice, provider.address, range(3, 5), 10, signer=mallory)
        expected = {"ServingSignerMismatch"}
    elif case == "other_provider":
        bad = await prove(prover, alice, keys[2].address, range(3, 5), 10)
        expected = {"ServingProviderMismatch"}
    elif case == "replayed":
        await serving.as_sender(provider).settle_fees(good)
        bad = good
        expected = {"ServingNonceTooLow"}
    elif case == "overlap":
        bad = await prove(prover, alice, provider.address, range(2, 4), 10)
        expected = {"ServingNonceTooLow"}
    else:
        bad = await prove(prover, alice, provider.address, range(3, 5), 600)
        expected = {"ServingInsufficientBalance"}
    before = await serving.get_account(alice.key.address, provider.address)
    ether = await w3.eth.get_balance(serving.address)

    calls = bad if case in {"replayed", "forged"} else [*good, *bad]
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(provider).settle_fees(calls)

    assert err.value.name in expected
    assert await serving.get_account(alice.key.address, provider.address) == before
    assert await w3.eth.get_balance(serving.address) == ether
