# SPDX-License-Identifier: Apache-2.0
"""Turns a settlement request (or one part of it) into proofs: sort, chunk, prove each chunk,
check, package."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from zg_prover.backends import Prover
from zg_shared.chain.models import SettlementProof
from zg_shared.chain.types import checksum
from zg_shared.events import (
    ChunkProof,
    ProofFailedV1,
    ProofReadyV1,
    SettlementRequestedV1,
    UserBatch,
    new_event_id,
)
from zg_shared.zk import ChunkError, WitnessError, build_chunk_input, split_into_chunks

log = logging.getLogger(__name__)
T = TypeVar("T")


class RunBlocking(Protocol):
    """Runs blocking work off the event loop (a thread by default; tests may run it inline)."""

    async def __call__(self, fn: Callable[[], T]) -> T: ...


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


class Unprovable(Exception):
    """The input can never be proven (a bad signature, mixed users...): retrying won't help."""

    def __init__(self, reason: str, user: str | None = None) -> None:
        super().__init__(reason)
        self.user = user


class ProverService:
    def __init__(
        self, backend: Prover, run_blocking: RunBlocking = _in_thread, *, instance: str = ""
    ) -> None:
        self.backend = backend
        self.instance = instance
        self._run_blocking = run_blocking

    def circuit_size(self, wanted: int | None) -> int:
        """The size asked for, or the largest one this prover has keys for."""
        if wanted is None:
            return max(self.backend.sizes)
        if wanted not in self.backend.sizes:
            raise Unprovable(f"no keys for circuit size {wanted} (have {self.backend.sizes})")
        return wanted

    async def prove_batch(self, provider: str, batch: UserBatch, n: int) -> list[ChunkProof]:
        proofs, _ = await self._prove_batch(provider, batch, n)
        return proofs

    async def _prove_batch(
        self, provider: str, batch: UserBatch, n: int
    ) -> tuple[list[ChunkProof], float]:
        """The batch's chunk proofs, and the CPU seconds they took."""
        provider_int, user_int = int(provider, 16), int(batch.user, 16)
        for request in batch.requests:
            if request.user != user_int or request.provider != provider_int:
                raise Unprovable("a request's user or provider differs from its batch", batch.user)
        proofs, cpu_s = [], 0.0
        for requests in split_into_chunks(batch.requests, n):
            try:
                chunk = build_chunk_input(requests, batch.signer, n)
            except ChunkError as exc:
                raise Unprovable(str(exc), batch.user) from exc
            try:
                proven = await self._run_blocking(functools.partial(self.backend.prove, chunk))
            except WitnessError as exc:
                where = f" ({exc.template} line {exc.line})" if exc.template else ""
                raise Unprovable(f"the circuit rejects the requests{where}", batch.user) from exc
            cpu_s += proven.timings.cpu_s
            a, b, c, public = proven.proof.to_calldata()
            if list(public) != chunk.public_inputs():
                raise RuntimeError("proof public inputs differ from the chunk: refusing to publish")
            proofs.append(
                ChunkProof(
                    user=batch.user,
                    init_nonce=chunk.init_nonce,
                    final_nonce=chunk.final_nonce,
                    total_fee=chunk.total_fee,
                    request_count=chunk.count,
                    calldata=SettlementProof(circuit_size=n, a=a, b=b, c=c, public_inputs=public),
                )
            )
        return proofs, cpu_s

    async def handle(self, request: SettlementRequestedV1) -> ProofReadyV1 | ProofFailedV1:
        """Proofs for every batch, or why the request can never be proven. Transient
        failures (a crashed prover process, a timeout) raise, so the message is redelivered."""
        started = time.perf_counter()
        proofs: list[ChunkProof] = []
        cpu_s = 0.0
        # Ids no outsider can predict (the settlement id is on the bus for anyone to read):
        # one published first under the id would make JetStream drop ours. A redelivered
        # request proves again; billing takes one proof per part.
        suffix = f"-{request.part}" if request.parts > 1 else ""
        try:
            n = self.circuit_size(request.circuit_size)
            for batch in request.batches:
                batch_proofs, batch_cpu_s = await self._prove_batch(request.provider, batch, n)
                proofs += batch_proofs
                cpu_s += batch_cpu_s
        except Unprovable as exc:
            log.warning("settlement %s cannot be proven: %s", request.settlement_id, exc)
            return ProofFailedV1(
                event_id=f"proof-failed-{request.settlement_id}{suffix}-{new_event_id()}",
                settlement_id=request.settlement_id,
                provider=request.provider,
                reason=str(exc),
                retryable=False,
                user=checksum(exc.user) if exc.user else None,
                part=request.part,
            )
        elapsed = time.perf_counter() - started
        return ProofReadyV1(
            event_id=f"proof-ready-{request.settlement_id}{suffix}-{_digest(proofs)}",
            settlement_id=request.settlement_id,
            provider=request.provider,
            proofs=tuple(proofs),
            backend=self.backend.name,
            circuit_size=n,
            prove_seconds=elapsed,
            part=request.part,
            parts=request.parts,
            cpu_seconds=cpu_s,
            dev_keys=self.backend.dev_keys,
            prover=self.instance,
        )


def _digest(proofs: list[ChunkProof]) -> str:
    """A digest of the proofs: known to no one before they are published."""
    blob = b"".join(p.calldata.model_dump_json().encode() for p in proofs)
    return hashlib.sha256(blob).hexdigest()[:32]
