# SPDX-License-Identifier: Apache-2.0
"""What billing believes of what the bus tells it about money.

Anyone who reaches the bus can publish on it, so no event moves money on its word alone:

- a `FeesSettled` (or `RefundRequested`, which makes billing settle at once) is acted on only
  if the chain has that very log (its receipt holds it at the event's position) with the same
  user, provider, amount and nonce (index);
- a served request is booked only if the gateway signed the event (`attestation`) with the
  receipt key the service registered on chain (`signerAddress`), or with the key that one
  replaced, for REPLACED_SIGNER_S after billing saw the change;
- a proof is taken only if it is the chunk billing asked for in that part of the settlement
  (user, nonce range, fee and count, in the summary and in the proof's public inputs);
- a failed proof names a user and part of an open settlement, and a request is written off
  as unprovable only when billing itself finds its signature invalid against the account's
  signer on chain (otherwise the settlement is proven again once its proof is late).

A refused event is logged on one line, counted, and acknowledged: it changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from zg_billing.book import BookEntry
from zg_billing.metrics import BillingMetrics
from zg_billing.records import ChunkRange, SettlementRecord
from zg_shared.chain import Address, ServingClient, ServingEvent
from zg_shared.crypto import PublicKey, Signature, verify_request
from zg_shared.eip191 import signer_of
from zg_shared.events import (
    ChainEvent,
    ChunkProof,
    ProofFailedV1,
    ProofReadyV1,
    RequestServedV1,
)

log = logging.getLogger(__name__)
# The provider's services (and so their receipt signers) are read again at most this often.
SIGNER_REFRESH_S = 1.0
# After a service's receipt key is replaced, events signed with the key it replaced are still
# taken this long (from when billing saw the change): a gateway replica that had not read the
# change yet, or an outbox that held its events, signed them while that key was registered.
REPLACED_SIGNER_S = 60.0


class Evidence:
    def __init__(
        self,
        chain: ServingClient,
        metrics: BillingMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain
        self.metrics = metrics
        self._clock = clock
        # The provider's services (name -> registered receipt signer), read from the chain.
        self._signers: dict[str, Address] = {}
        # service -> (the receipt signer a change replaced, when billing saw the change)
        self._replaced: dict[str, tuple[Address, float]] = {}
        self._read_at = -SIGNER_REFRESH_S
        self._refresh_lock = asyncio.Lock()

    async def served(self, event: RequestServedV1) -> bool:
        """Whether the gateway signed this served event with the service's receipt key."""
        claimed = signer_of(event.digest(), event.attestation) if event.attestation else None
        if claimed is not None and await self._signs_for(event.service, claimed):
            return True
        self.refuse(
            event.SUBJECT,
            f"request {event.event_id[:64]!r} of {event.user} (nonce {event.nonce}, "
            f"{event.outcome}) is not signed by service {event.service[:64]!r}'s receipt key",
        )
        return False

    async def _signs_for(self, service: str, claimed: Address) -> bool:
        """Whether `claimed` is the service's registered receipt signer, or the one it replaced
        less than REPLACED_SIGNER_S ago. On a mismatch the provider's services are read again
        (a signer rotated, a service added), at most once per SIGNER_REFRESH_S: forged events
        cannot flood the chain, and a real one never goes unchecked."""
        if not self._accepts(service, claimed):
            async with self._refresh_lock:
                if not self._accepts(service, claimed):
                    wait = self._read_at + SIGNER_REFRESH_S - self._clock()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    await self.read_signers()
        return self._accepts(service, claimed)

    def _accepts(self, service: str, claimed: Address) -> bool:
        if self._signers.get(service) == claimed:
            return True
        replaced = self._replaced.get(service)
        return (
            replaced is not None
            and replaced[0] == claimed
            and self._clock() - replaced[1] < REPLACED_SIGNER_S
        )

    async def read_signers(self) -> None:
        """Reads the provider's services from the chain (at start, so that billing books
        served requests through an RPC outage)."""
        services = await self.chain.get_all_services()
        self._read_at = self._clock()
        signers = {
            s.name: s.signer_address
            for s in services
            if s.provider.lower() == self.chain.sender.lower()
        }
        for name, signer in self._signers.items():
            if signers.get(name) != signer:
                self._replaced[name] = (signer, self._read_at)
        self._signers = signers

    def refuse(self, subject: str, why: str) -> None:
        self.metrics.refused(subject)
        log.warning("refused %s: %s", subject, why)

    async def on_chain(self, event: ChainEvent, kind: type[ServingEvent], *fields: str) -> bool:
        """Whether the chain has, at the event's position, a `kind` log whose `fields` are the
        event's (ChainUnavailable if it cannot be asked now: the event waits)."""
        found = await self.chain.event_at(event.position)
        if isinstance(found, kind) and all(getattr(found, f) == getattr(event, f) for f in fields):
            return True
        seen = f"the chain has {found.EVENT} there" if found else "the chain has no such log"
        claimed = ", ".join(f"{f}={getattr(event, f)}" for f in fields)
        self.refuse(
            event.SUBJECT,
            f"{claimed} in tx {event.position.transaction_hash} log "
            f"{event.position.log_index}: {seen}",
        )
        return False

    def proofs(self, record: SettlementRecord, event: ProofReadyV1) -> bool:
        """Whether the event's proofs are the chunk billing asked for in its part."""
        why = _proofs_mismatch(record, event)
        if why is None:
            return True
        self.refuse(event.SUBJECT, f"settlement {record.id} part {event.part}: {why}")
        return False

    def proof_failure(self, record: SettlementRecord, event: ProofFailedV1) -> bool:
        """Whether the failure is of a part and (if it names one) a user of this settlement."""
        why = None
        if event.provider.lower() != record.provider.lower():
            why = f"provider {event.provider} is not the settlement's"
        elif not 0 <= event.part < record.proof_parts:
            why = f"part {event.part}; the settlement has {record.proof_parts}"
        elif event.user is not None and event.user.lower() not in {u.lower() for u in record.users}:
            why = f"{event.user} has no requests in it"
        if why is None:
            return True
        self.refuse(event.SUBJECT, f"settlement {record.id}: {why}")
        return False

    async def invalid_signatures(
        self, user: str, entries: Iterable[tuple[int, BookEntry | None]]
    ) -> list[int]:
        """The nonces whose signature does not verify against the account's signer on chain
        (a request missing from the book counts as valid: nothing to judge it by)."""
        account = await self.chain.get_account(user, self.chain.sender)
        signer = PublicKey(*account.signer)
        bad = []
        for nonce, entry in entries:
            if entry is None:
                continue
            try:
                valid = verify_request(
                    user,
                    self.chain.sender,
                    nonce,
                    int(entry.fee),
                    Signature.from_hex(entry.sig),
                    signer,
                )
            except (ValueError, TypeError):
                valid = False
            if not valid:
                bad.append(nonce)
        return bad


def _proofs_mismatch(record: SettlementRecord, event: ProofReadyV1) -> str | None:
    if event.provider.lower() != record.provider.lower():
        return f"provider {event.provider} is not the settlement's"
    if event.parts != record.proof_parts or not 0 <= event.part < record.proof_parts:
        return f"part {event.part} of {event.parts}; the settlement has {record.proof_parts}"
    if len(record.planned) != record.proof_parts:
        # A record from before billing kept its plan: proven again once its proof is late.
        return "the settlement has no plan of its chunks to check proofs against"
    if len(event.proofs) != 1:
        return f"{len(event.proofs)} proofs for one chunk"
    proof, wanted = event.proofs[0], record.planned[event.part]
    if not _same_chunk(proof, wanted):
        return (
            f"a proof for {proof.user} nonces {proof.init_nonce}..{proof.final_nonce} "
            f"({proof.total_fee} wei, {proof.request_count} requests) is not the chunk asked for"
        )
    if not _public_inputs_match(proof, record.provider):
        return f"the proof for {proof.user} proves other public inputs than it says"
    return None


def _same_chunk(proof: ChunkProof, wanted: ChunkRange) -> bool:
    return (
        proof.user.lower(),
        proof.init_nonce,
        proof.final_nonce,
        proof.total_fee,
        proof.request_count,
    ) == (
        wanted.user.lower(),
        wanted.init_nonce,
        wanted.final_nonce,
        wanted.total_fee,
        wanted.request_count,
    )


def _public_inputs_match(proof: ChunkProof, provider: str) -> bool:
    user, prov, init_nonce, final_nonce, total_fee, _, _ = proof.calldata.public_inputs
    return (user, prov, init_nonce, final_nonce, total_fee) == (
        int(proof.user, 16),
        int(provider, 16),
        proof.init_nonce,
        proof.final_nonce,
        proof.total_fee,
    )
