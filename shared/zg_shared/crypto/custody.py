# SPDX-License-Identifier: Apache-2.0
"""Key custody: the request-signing key, encrypted under a key the user's wallet re-derives.

Scheme (docs/key-custody.md explains it and its threats):

1. The wallet signs a fixed EIP-191 message that names the purpose, chain id, contract
   and provider. secp256k1 signing is deterministic (RFC 6979), so the same wallet
   produces the same 65 bytes every time.
2. HKDF-SHA256 turns that signature into a 32-byte AES key.
3. AES-256-GCM encrypts the 32-byte BabyJubJub private key. The associated data binds
   the ciphertext to the version, chain, contract, provider, user and the public key
   registered as ``signer``.
4. ``additionalInfo`` holds ``zgk1:`` + base64url(nonce || ciphertext || tag).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from Crypto.Cipher import AES
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from zg_shared.crypto import eddsa
from zg_shared.crypto.eddsa_pure import PRIVATE_KEY_BYTES, check_private_key
from zg_shared.crypto.keys import PublicKey

VERSION = "zgk1"
_PREFIX = VERSION + ":"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_SALT = b"zgserve/key-custody/v1"


class CustodyError(ValueError):
    """The blob is malformed, or does not decrypt under this wallet and context."""


@dataclass(frozen=True, slots=True)
class CustodyContext:
    """Where a signing key is used: it is encrypted for exactly this context."""

    chain_id: int
    contract: str
    provider: str
    user: str

    def __post_init__(self) -> None:
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int):
            raise TypeError("chain_id must be an int")
        if self.chain_id <= 0:
            raise ValueError("chain_id must be positive")
        # Normalise so that the same addresses in any case derive the same key.
        object.__setattr__(self, "contract", to_checksum_address(self.contract))
        object.__setattr__(self, "provider", to_checksum_address(self.provider))
        object.__setattr__(self, "user", to_checksum_address(self.user))

    def wallet_message(self) -> str:
        """The text the wallet signs (EIP-191 personal_sign). Do not change: v1 depends on it."""
        return (
            "zgserve: unlock my request-signing key\n"
            f"version: {VERSION}\n"
            f"chain id: {self.chain_id}\n"
            f"contract: {self.contract}\n"
            f"provider: {self.provider}\n"
            "Sign this only inside a zgserve client. It reveals your request-signing key "
            "to whoever holds the signature."
        )

    def associated_data(self, pub: PublicKey) -> bytes:
        return b"|".join(
            [
                VERSION.encode(),
                str(self.chain_id).encode(),
                self.contract.encode(),
                self.provider.encode(),
                self.user.encode(),
                pub.to_bytes(),
            ]
        )


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF (extract then expand), from the standard library."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def wallet_signature(wallet_key: bytes | str, ctx: CustodyContext) -> bytes:
    """The 65-byte EIP-191 signature of the context message (deterministic).

    Raises CustodyError if the wallet key does not belong to ``ctx.user``.
    """
    account = Account.from_key(wallet_key)
    if account.address != ctx.user:
        raise CustodyError("the wallet key does not belong to the context's user")
    signed = account.sign_message(encode_defunct(text=ctx.wallet_message()))
    return bytes(signed.signature)


def derive_encryption_key(signature: bytes, ctx: CustodyContext) -> bytes:
    """AES-256 key from the wallet's signature of the context message."""
    if len(signature) != 65:
        raise ValueError("expected a 65-byte secp256k1 signature")
    return _hkdf_sha256(signature, _SALT, ctx.wallet_message().encode())


def seal(signature: bytes, ctx: CustodyContext, prv: bytes) -> str:
    """Encrypt ``prv`` for ``additionalInfo`` with a wallet signature already obtained.

    Split from ``encrypt_signing_key`` for wallets that sign elsewhere (a browser).
    """
    prv = check_private_key(prv)
    key = derive_encryption_key(signature, ctx)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG_BYTES)
    cipher.update(ctx.associated_data(eddsa.prv2pub(prv)))
    ciphertext, tag = cipher.encrypt_and_digest(prv)
    blob = base64.urlsafe_b64encode(nonce + ciphertext + tag).rstrip(b"=").decode()
    return _PREFIX + blob


def unseal(signature: bytes, ctx: CustodyContext, blob: str, signer: PublicKey) -> bytes:
    """Decrypt ``blob`` and check it is the private key of the registered ``signer``."""
    if not isinstance(blob, str) or not blob.startswith(_PREFIX):
        raise CustodyError(f"not a {VERSION} key blob")
    body = blob[len(_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as exc:
        raise CustodyError("key blob is not base64url") from exc
    if len(raw) != _NONCE_BYTES + PRIVATE_KEY_BYTES + _TAG_BYTES:
        raise CustodyError("key blob has the wrong length")
    nonce = raw[:_NONCE_BYTES]
    ciphertext = raw[_NONCE_BYTES : _NONCE_BYTES + PRIVATE_KEY_BYTES]
    tag = raw[_NONCE_BYTES + PRIVATE_KEY_BYTES :]
    cipher = AES.new(
        derive_encryption_key(signature, ctx), AES.MODE_GCM, nonce=nonce, mac_len=_TAG_BYTES
    )
    cipher.update(ctx.associated_data(signer))
    try:
        prv = cipher.decrypt_and_verify(ciphertext, tag)
    except ValueError as exc:
        raise CustodyError("key blob does not decrypt with this wallet and context") from exc
    # The tag already binds the signer via the associated data; this also catches a
    # blob sealed with a mismatched key by a buggy client.
    if eddsa.prv2pub(prv) != signer:
        raise CustodyError("decrypted key does not match the registered signer")
    return prv


def encrypt_signing_key(wallet_key: bytes | str, ctx: CustodyContext, prv: bytes) -> str:
    """The ``additionalInfo`` string holding ``prv``, sealed to the wallet and context."""
    return seal(deterministic_wallet_signature(lambda: wallet_signature(wallet_key, ctx)), ctx, prv)


def deterministic_wallet_signature(sign: Callable[[], bytes]) -> bytes:
    """Sign twice and insist on the same bytes: a wallet with random ECDSA nonces could
    never re-derive the key, so refuse to seal with it rather than lose the key later."""
    first = sign()
    if sign() != first:
        raise CustodyError("the wallet's signatures are not deterministic (RFC 6979)")
    return first


def decrypt_signing_key(
    wallet_key: bytes | str, ctx: CustodyContext, blob: str, signer: PublicKey
) -> bytes:
    """Recover the signing key from ``additionalInfo`` with the wallet key alone."""
    return unseal(wallet_signature(wallet_key, ctx), ctx, blob, signer)
