# SPDX-License-Identifier: Apache-2.0
"""The chunk the proof benches prove: N requests of one user to one provider, signed by a fresh
key (nonces 1..N, fee 1000 + nonce), so every slot of SettleBatch(N) is enabled."""

from __future__ import annotations

from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.zk import ChunkInput, SignedRequest, build_chunk_input

USER, PROVIDER = "0x" + "11" * 20, "0x" + "22" * 20


def sample_chunk(n: int) -> ChunkInput:
    prv = generate_private_key()
    requests = [
        SignedRequest.from_signature_hex(
            user=USER,
            provider=PROVIDER,
            nonce=nonce,
            fee=1000 + nonce,
            signature=sign_request(prv, USER, PROVIDER, nonce, 1000 + nonce).to_hex(),
        )
        for nonce in range(1, n + 1)
    ]
    return build_chunk_input(requests, prv2pub(prv).as_tuple(), n)
