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

A key that replaces another (``rotateSigner``) is sealed at the next *generation* n >= 1
(scheme ``zgk2``): the wallet message and the associated data also name n, and the blob is
``zgk2:<n>:`` + base64url(...). So a wallet signature phished for one generation does not
open the key of the next. Generation 0 is exactly ``zgk1``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from Crypto.Cipher import AES
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from zg_shared.crypto import eddsa
from zg_shared.crypto.eddsa_pure import PRIVATE_KEY_BYTES, check_private_key
from zg_shared.crypto.keys import PublicKey

VERSION = "zgk1"
_PREFIX = VERSION + ":"
ROTATED_VERSION = "zgk2"
_ROTATED_PREFIX = ROTATED_VERSION + ":"
_MAX_GENERATION_DIGITS = 9
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
    # 0 for the account's first key; n for the key of its n-th rotation (scheme zgk2).
    generation: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int):
            raise TypeError("chain_id must be an int")
        if self.chain_id <= 0:
            raise ValueError("chain_id must be positive")
        if isinstance(self.generation, bool) or not isinstance(self.generation, int):
            raise TypeError("generation must be an int")
        if not 0 <= self.generation < 10**_MAX_GENERATION_DIGITS:
            raise ValueError("generation out of range")
        # Normalise so that the same addresses in any case derive the same key.
        object.__setattr__(self, "contract", to_checksum_address(self.contract))
        object.__setattr__(self, "provider", to_checksum_address(self.provider))
        object.__setattr__(self, "user", to_checksum_address(self.user))

    def wallet_message(self) -> str:
        """The text the wallet signs (EIP-191 personal_sign). Do not change: v1 and v2
        depend on it."""
        version = (
            f"version: {VERSION}\n"
            if self.generation == 0
            else f"version: {ROTATED_VERSION}\nkey generation: {self.generation}\n"
        )
        return (
            "zgserve: unlock my request-signing key\n"
            f"{version}"
            f"chain id: {self.chain_id}\n"
            f"contract: {self.contract}\n"
            f"provider: {self.provider}\n"
            "Sign this only inside a zgserve client. It reveals your request-signing key "
            "to whoever holds the signature."
        )

    def associated_data(self, pub: PublicKey) -> bytes:
        version = (
            [VERSION.encode()]
            if self.generation == 0
            else [ROTATED_VERSION.encode(), str(self.generation).encode()]
        )
        return b"|".join(
            [
                *version,
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
    if ctx.generation == 0:
        return _PREFIX + blob
    return f"{_ROTATED_PREFIX}{ctx.generation}:{blob}"


def _split(blob: str) -> tuple[int, str]:
    """(generation, base64url body) of a key blob."""
    if not isinstance(blob, str):
        raise CustodyError("not a key blob")
    if blob.startswith(_PREFIX):
        return 0, blob[len(_PREFIX) :]
    if blob.startswith(_ROTATED_PREFIX):
        generation, sep, body = blob[len(_ROTATED_PREFIX) :].partition(":")
        if (
            sep
            and generation.isascii()
            and generation.isdigit()
            and len(generation) <= _MAX_GENERATION_DIGITS
            and not generation.startswith("0")
        ):
            return int(generation), body
    raise CustodyError(f"not a {VERSION} or {ROTATED_VERSION} key blob")


def blob_generation(blob: str) -> int:
    """The generation a blob was sealed at: its wallet message is that generation's."""
    return _split(blob)[0]


def unseal(signature: bytes, ctx: CustodyContext, blob: str, signer: PublicKey) -> bytes:
    """Decrypt ``blob`` and check it is the private key of the registered ``signer``.
    ``signature`` is over the wallet message of the blob's generation (``blob_generation``)."""
    generation, body = _split(blob)
    if generation != ctx.generation:
        raise CustodyError(
            f"the key blob is of generation {generation}, the context of {ctx.generation}"
        )
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
    """Recover the signing key from ``additionalInfo`` with the wallet key alone, at the
    generation the blob names."""
    ctx = replace(ctx, generation=blob_generation(blob))
    return unseal(wallet_signature(wallet_key, ctx), ctx, blob, signer)
