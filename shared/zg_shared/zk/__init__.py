# SPDX-License-Identifier: Apache-2.0
"""The settlement proof: SettleBatch circuit inputs, Groth16 proofs and their calldata."""

from zg_shared.zk.models import (
    FEE_BITS,
    N_PUBLIC,
    NONCE_BITS,
    SNARK_FIELD,
    SUBORDER,
    ChunkError,
    ChunkInput,
    Groth16Proof,
    SignedRequest,
    build_chunk_input,
    split_into_chunks,
)
from zg_shared.zk.snarkjs import Snarkjs, SnarkjsError, WitnessError

__all__ = [
    "FEE_BITS",
    "NONCE_BITS",
    "N_PUBLIC",
    "SNARK_FIELD",
    "SUBORDER",
    "ChunkError",
    "ChunkInput",
    "Groth16Proof",
    "SignedRequest",
    "Snarkjs",
    "SnarkjsError",
    "WitnessError",
    "build_chunk_input",
    "split_into_chunks",
]
