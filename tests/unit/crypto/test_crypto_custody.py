# SPDX-License-Identifier: Apache-2.0
"""Key custody: the signing key round-trips through additionalInfo with the wallet alone."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from zg_shared.crypto import eddsa
from zg_shared.crypto.custody import (
    CustodyContext,
    CustodyError,
    blob_generation,
    decrypt_signing_key,
    deterministic_wallet_signature,
    encrypt_signing_key,
    seal,
    unseal,
    wallet_signature,
)

WALLET = "0x" + "4c" * 32
OTHER_WALLET = "0x" + "5d" * 32
CONTRACT = "0x" + "c0" * 20
PROVIDER = "0x" + "ab" * 20


@pytest.fixture
def ctx() -> CustodyContext:
    return CustodyContext(31337, CONTRACT, PROVIDER, Account.from_key(WALLET).address)


def test_round_trip(ctx: CustodyContext) -> None:
    prv = eddsa.generate_private_key()
    blob = encrypt_signing_key(WALLET, ctx, prv)
    assert blob.startswith("zgk1:")
    assert prv.hex() not in blob
    assert decrypt_signing_key(WALLET, ctx, blob, eddsa.prv2pub(prv)) == prv


def test_wallet_signature_is_deterministic(ctx: CustodyContext) -> None:
    assert wallet_signature(WALLET, ctx) == wallet_signature(WALLET, ctx)
    assert len(wallet_signature(WALLET, ctx)) == 65


def test_encryption_is_randomised(ctx: CustodyContext) -> None:
    prv = bytes(32)
    assert encrypt_signing_key(WALLET, ctx, prv) != encrypt_signing_key(WALLET, ctx, prv)


def test_wrong_wallet_fails(ctx: CustodyContext) -> None:
    prv = eddsa.generate_private_key()
    blob = encrypt_signing_key(WALLET, ctx, prv)
    # The other wallet is refused outright for this user ...
    with pytest.raises(CustodyError, match="does not belong"):
        decrypt_signing_key(OTHER_WALLET, ctx, blob, eddsa.prv2pub(prv))
    # ... and, posing as its own user, cannot decrypt either.
    other_ctx = CustodyContext(31337, CONTRACT, PROVIDER, Account.from_key(OTHER_WALLET).address)
    with pytest.raises(CustodyError, match="does not decrypt"):
        decrypt_signing_key(OTHER_WALLET, other_ctx, blob, eddsa.prv2pub(prv))


@pytest.mark.parametrize("field", ["chain_id", "contract", "provider"])
def test_other_context_fails(ctx: CustodyContext, field: str) -> None:
    prv = eddsa.generate_private_key()
    blob = encrypt_signing_key(WALLET, ctx, prv)
    changes: dict[str, int | str] = {
        "chain_id": 1,
        "contract": "0x" + "c1" * 20,
        "provider": "0x" + "ac" * 20,
    }
    values: dict[str, int | str] = {
        "chain_id": ctx.chain_id,
        "contract": ctx.contract,
        "provider": ctx.provider,
    }
    values[field] = changes[field]
    other = CustodyContext(
        int(values["chain_id"]), str(values["contract"]), str(values["provider"]), ctx.user
    )
    with pytest.raises(CustodyError, match="does not decrypt"):
        decrypt_signing_key(WALLET, other, blob, eddsa.prv2pub(prv))


def test_tampered_ciphertext_fails(ctx: CustodyContext) -> None:
    prv = eddsa.generate_private_key()
    blob = encrypt_signing_key(WALLET, ctx, prv)
    body = base64.urlsafe_b64decode(blob[5:] + "=" * (-len(blob[5:]) % 4))
    for i in (0, 12, 20, len(body) - 1):  # nonce, ciphertext, tag
        flipped = bytearray(body)
        flipped[i] ^= 1
        tampered = "zgk1:" + base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
        with pytest.raises(CustodyError, match="does not decrypt"):
            decrypt_signing_key(WALLET, ctx, tampered, eddsa.prv2pub(prv))


def test_wrong_signer_fails(ctx: CustodyContext) -> None:
    prv = eddsa.generate_private_key()
    blob = encrypt_signing_key(WALLET, ctx, prv)
    with pytest.raises(CustodyError):
        decrypt_signing_key(WALLET, ctx, blob, eddsa.prv2pub(bytes(32)))


@pytest.mark.parametrize("blob", ["", "zgk2:AAAA", "zgk1:", "zgk1:!!!!", "zgk1:" + "A" * 80])
def test_malformed_blob(ctx: CustodyContext, blob: str) -> None:
    with pytest.raises(CustodyError):
        decrypt_signing_key(WALLET, ctx, blob, eddsa.prv2pub(bytes(32)))


def test_context_normalises_addresses() -> None:
    a = CustodyContext(1, CONTRACT, PROVIDER, "0x" + "ee" * 20)
    b = CustodyContext(1, CONTRACT.upper().replace("0X", "0x"), PROVIDER, "0x" + "EE" * 20)
    assert a == b
    assert a.wallet_message() == b.wallet_message()
    with pytest.raises(ValueError, match="positive"):
        CustodyContext(0, CONTRACT, PROVIDER, CONTRACT)


def test_randomised_wallet_is_refused() -> None:
    draws = iter([b"\x01" * 65, b"\x02" * 65])
    with pytest.raises(CustodyError, match="deterministic"):
        deterministic_wallet_signature(lambda: next(draws))


def test_seal_and_unseal_with_an_external_signature(ctx: CustodyContext) -> None:
    # A browser wallet signs ctx.wallet_message(); Python only sees the signature.
    signed = Account.sign_message(
        encode_defunct(text=ctx.wallet_message()),
        WALLET,
    )
    prv = eddsa.generate_private_key()
    blob = seal(bytes(signed.signature), ctx, prv)
    assert unseal(bytes(signed.signature), ctx, blob, eddsa.prv2pub(prv)) == prv
    assert decrypt_signing_key(WALLET, ctx, blob, eddsa.prv2pub(prv)) == prv


def test_a_rotated_key_round_trips_at_its_generation(ctx: CustodyContext) -> None:
    prv = eddsa.generate_private_key()
    rotated = replace(ctx, generation=3)

    blob = encrypt_signing_key(WALLET, rotated, prv)

    assert blob.startswith("zgk2:3:")
    assert blob_generation(blob) == 3
    assert "key generation: 3" in rotated.wallet_message()
    # Recovery reads the generation from the blob: the caller's context need not know it.
    assert decrypt_signing_key(WALLET, ctx, blob, eddsa.prv2pub(prv)) == prv


def test_a_signature_phished_for_one_generation_does_not_open_the_next(
    ctx: CustodyContext,
) -> None:
    """Why a rotated key is sealed at a new generation: the phisher's signature (over the
    first generation's message) opens the first key, never its replacement."""
    first, second = eddsa.generate_private_key(), eddsa.generate_private_key()
    phished = wallet_signature(WALLET, ctx)
    assert unseal(phished, ctx, encrypt_signing_key(WALLET, ctx, first), eddsa.prv2pub(first))
    rotated = encrypt_signing_key(WALLET, replace(ctx, generation=1), second)

    with pytest.raises(CustodyError, match="generation 1"):
        unseal(phished, ctx, rotated, eddsa.prv2pub(second))
    with pytest.raises(CustodyError, match="does not decrypt"):
        unseal(phished, replace(ctx, generation=1), rotated, eddsa.prv2pub(second))


@pytest.mark.parametrize("blob", ["zgk2:0:AAAA", "zgk2:01:AAAA", "zgk2:x:AAAA", "zgk2:1" + "0" * 9])
def test_a_malformed_generation_is_refused(blob: str) -> None:
    with pytest.raises(CustodyError):
        blob_generation(blob)
