# SPDX-License-Identifier: Apache-2.0
"""Request-signing crypto: Poseidon, BabyJubJub EdDSA (circomlibjs-compatible), key custody.

The public functions take the C route (``_fast``) when it is built, else pure Python.
"""

from zg_shared.crypto.backend import implementation
from zg_shared.crypto.custody import (
    CustodyContext,
    CustodyError,
    blob_generation,
    decrypt_signing_key,
    encrypt_signing_key,
)
from zg_shared.crypto.eddsa import (
    clear_key_cache,
    generate_private_key,
    prv2pub,
    sign_poseidon,
    verify_poseidon,
)
from zg_shared.crypto.field import P
from zg_shared.crypto.keys import PublicKey, Signature
from zg_shared.crypto.poseidon import poseidon
from zg_shared.crypto.request import request_message, sign_request, verify_request

__all__ = [
    "CustodyContext",
    "CustodyError",
    "P",
    "PublicKey",
    "Signature",
    "blob_generation",
    "clear_key_cache",
    "decrypt_signing_key",
    "encrypt_signing_key",
    "generate_private_key",
    "implementation",
    "poseidon",
    "prv2pub",
    "request_message",
    "sign_poseidon",
    "sign_request",
    "verify_poseidon",
    "verify_request",
]
