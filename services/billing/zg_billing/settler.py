# SPDX-License-Identifier: Apache-2.0
"""From unsettled requests to confirmed settlements.

`tick` runs the policy: it seals the due accounts' requests into settlements (several users and
chunks per transaction) and asks the prover for proofs. `on_proof_ready` submits `settleFees`;
a chunk the contract refuses is dropped (with the same user's later chunks, which would skip
its nonces) and the rest is sent again at once, since their proofs stay valid. Requests are
settled only when the chain indexer reports `FeesSettled` (`on_fees_settled`). A settlement
whose proof or confirmation is late is re-checked against the chain and given up if the chain
does not have it; its requests go back to the book and a later attempt re-proves what is still
valid. The contract's nonce check makes every retry safe: a request can never be paid twice.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from zg_billing.book import AccountSummary, Book, Sealed, account_tag
from zg_billing.chunking import DEFAULT_SLOT_GAS, cut, plan_chunks, whole_chunks
from zg_billing.evidence import Evidence
from zg_billing.metrics import BillingMetrics
from zg_billing.policy import Policy, Reason
from zg_billing.records import (
    AttemptTracker,
    ChunkRange,
    ChunkState,
    PartRequest,
    SettlementRecord,
    SettlementStore,
    Status,
    UserPart,
)
from zg_shared.accounts import AccountStore
from zg_shared.chain import (
    ChainUnavailable,
    ContractRevert,
    FeesSettled,
    RefundRequested,
    ServingClient,
    SignerRotated,
)
from zg_shared.chain.types import Address
from zg_shared.events import (
    ChunkProof,
    Event,
    FeesSettledV1,
    ProofFailedV1,
    ProofReadyV1,
    RefundRequestedV1,
    SettledChunk,
    SettlementConfirmedV1,
    SettlementFailedV1,
    SettlementRequestedV1,
    SignerRotatedV1,
    UnsettledRequest,
    UserBatch,
)
from zg_shared.zk import SignedRequest

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("zg_billing")
_propagator = TraceContextTextMapPropagator()

Publish = Callable[[Event], Awaitable[object]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class SettlerConfig:
    def __init__(
        self,
        *,
        circuit_sizes: tuple[int, ...],
        max_chunks_per_user: int,
        max_chunks_per_tx: int,
        proof_timeout_s: float,
        confirm_timeout_s: float,
        slot_gas: int = DEFAULT_SLOT_GAS,
        settle_now_interval_s: float = 60.0,
        confirmations: int = 6,
    ) -> None:
        self.circuit_sizes = circuit_sizes
        self.slot_gas = slot_gas
        self.max_chunks_per_user = max_chunks_per_user
        self.max_chunks_per_tx = max_chunks_per_tx
        self.proof_timeout_ms = int(proof_timeout_s * 1000)
        self.confirm_timeout_ms = int(confirm_timeout_s * 1000)
        self.settle_now_interval_ms = int(settle_now_interval_s * 1000)
        self.confirmations = confirmations


class Settler:
    def __init__(
        self,
        *,
        book: Book,
        records: SettlementStore,
        accounts: AccountStore,
        attempts: AttemptTracker,
        chain: ServingClient,
        publish: Publish,
        policy: Policy,
        config: SettlerConfig,
        metrics: BillingMetrics,
        evidence: Evidence,
        clock: Callable[[], int] = _now_ms,
        fence: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`fence`: raises unless this instance still holds the lease (zg_billing.lease),
        checked just before a settlement transaction goes out."""
        self.book = book
        self.records = records
        self.accounts = accounts
        self.attempts = attempts
        self.chain = chain
        self.provider: Address = chain.sender
        self.publish = publish
        self.policy = policy
        self.config = config
        self.metrics = metrics
        self.evidence = evidence
        self._clock = clock
        self._fence = fence
        self._last_sweep_ms = clock()
        self._settle_now_ms = 0  # when a SettleNow command was last honoured
        self._id_key = secrets.token_bytes(16)
        # Settlement records change in several handlers; one at a time keeps each change whole.
        self._lock = asyncio.Lock()

    def _event_id(self, base: str) -> str:
        """`base` (which names a settlement, and settlement ids are on the bus for anyone to
        read) with a keyed digest: the same id for the same event within this process, so a
        republish is a duplicate, and one no outsider can publish first under."""
        return f"{base}-{hmac.new(self._id_key, base.encode(), 'sha256').hexdigest()[:16]}"

    # ------------------------------------------------------------ the policy

    async def tick(self) -> list[SettlementRecord]:
        """One pass: re-check late settlements, then settle the accounts that are due."""
        now = self._clock()
        await self._check_late(now)
        summaries = [
            s for s in await self.book.due_accounts() if s.provider.lower() == self.provider.lower()
        ]
        self.metrics.unsettled(
            sum(s.unsettled_fee for s in summaries), sum(s.unsettled_count for s in summaries)
        )
        open_ids = {r.id for r in await self.records.open_records()}
        backing_off = await self.attempts.waiting(now)
        sweep = now - self._last_sweep_ms >= self.policy.sweep_interval_s * 1000
        if sweep:
            self._last_sweep_ms = now
        due: list[tuple[AccountSummary, Reason]] = []
        waiting: list[AccountSummary] = []
        for summary in summaries:
            if summary.settling:
                if summary.settling not in open_ids:  # its settler died between seal and record
                    await self.book.release(summary.user, self.provider, summary.settling)
                continue
            if account_tag(summary.user, self.provider) in backing_off:
                continue
            reason = self.policy.due(
                unsettled_fee=summary.unsettled_fee,
                unsettled_count=summary.unsettled_count,
                oldest_ms=summary.oldest_ms,
                flagged=summary.due_reason,
                now_ms=now,
                sweeping=sweep,
            )
            if reason is not None:
                due.append((summary, reason))
            else:
                waiting.append(summary)
        if due:
            # A call goes out anyway: accounts half way to due share it (policy.py).
            due += [
                (s, Reason.JOIN)
                for s in waiting
                if self.policy.joins(
                    unsettled_fee=s.unsettled_fee,
                    unsettled_count=s.unsettled_count,
                    oldest_ms=s.oldest_ms,
                    now_ms=now,
                )
            ]
        return await self._settle(due, now)

    async def _settle(
        self, due: list[tuple[AccountSummary, Reason]], now: int
    ) -> list[SettlementRecord]:
        n = max(self.config.circuit_sizes)
        created: list[SettlementRecord] = []
        draft = _Draft(now)
        anchored = False  # an account that is due is in: joiners only ride along with one
        for summary, reason in due:
            if reason is Reason.JOIN and not anchored:
                break
            user = summary.user
            room = min(
                self.config.max_chunks_per_user, self.config.max_chunks_per_tx - draft.chunks
            )
            if reason is Reason.FULL:
                room = min(room, summary.unsettled_count // n)
            sealed = await self.book.seal(user, self.provider, draft.id, room * n)
            if sealed.status != "ok":
                continue
            if not sealed.current and not await self._key_still_settles(user, sealed.signer):
                await self._write_off_replaced(draft.id, user, sealed)
                continue
            if reason is Reason.FULL:
                # Whole chunks only: the rest keeps filling (a request still being served, or
                # the balance, may have cut the batch short).
                whole = whole_chunks(sealed.requests, n)
                if not whole:
                    await self.book.release(user, self.provider, draft.id)
                    continue
                sealed = sealed.model_copy(update={"requests": tuple(whole)})
            plan = plan_chunks(
                len(sealed.requests), self.config.circuit_sizes, self.config.slot_gas
            )
            draft.add(user, self.provider, sealed, reason.value, plan)
            anchored = True
            if draft.chunks >= self.config.max_chunks_per_tx:
                created.append(await self._request(draft))
                draft = _Draft(now)
        if draft.parts:
            created.append(await self._request(draft))
        return created

    async def _key_still_settles(self, user: Address, signer: tuple[int, int]) -> bool:
        """Whether the contract still takes chunks proved against `signer` (the account's key,
        or the key it replaced before that one's window ends), by the chain's clock."""
        account = await self.chain.get_account(user, self.provider)
        return account.accepts_signer(signer, await self.chain.chain_time())

    async def _write_off_replaced(self, settlement_id: str, user: Address, sealed: Sealed) -> None:
        """The requests a replaced key signed, once the contract no longer takes that key: they
        can never be settled. Left in the book they would come first in nonce order at every
        attempt, fail, and hold back every later request of the account (which the user could
        then refund), so they are written off and reported, and the rest is settled at once."""
        part = _part(user, sealed)
        await self.book.write_off(user, self.provider, [r.nonce for r in part.requests])
        await self.book.release(user, self.provider, settlement_id)
        await self.book.flag_due(user, self.provider, Reason.RETRY)
        self.metrics.written_off(len(part.requests))
        reason = "signed by a replaced key whose settlement window has passed"
        log.warning(
            "%s's %d requests up to nonce %d written off: %s",
            user,
            len(part.requests),
            part.requests[-1].nonce,
            reason,
        )
        await self._report(settlement_id, reason, part.requests, user)

    async def _request(self, draft: _Draft) -> SettlementRecord:
        record = SettlementRecord(
            id=draft.id,
            provider=self.provider,
            reasons=tuple(sorted(draft.reasons)),
            created_ms=self._clock(),
            oldest_served_ms=draft.oldest_ms,
            parts=tuple(draft.parts),
            proof_parts=len(draft.chunks_to_prove),
            planned=tuple(_chunk_range(batch) for batch, _ in draft.chunks_to_prove),
        )
        await self.records.save(record)
        # The settlement continues the trace of its oldest request and links the others, so one
        # trace runs from a user's HTTP request through the proof to the transaction.
        with _tracer.start_as_current_span(
            "settlement", context=draft.parent_context(), links=draft.links()
        ) as span:
            span.set_attribute("zg.settlement_id", record.id)
            span.set_attribute("zg.provider", record.provider)
            span.set_attribute("zg.users", record.users)
            span.set_attribute("zg.requests", record.request_count)
            # One message per chunk: the provers sharing the queue prove them in parallel.
            parts = len(draft.chunks_to_prove)
            for part, (batch, size) in enumerate(draft.chunks_to_prove):
                await self.publish(
                    SettlementRequestedV1(
                        event_id=f"settle-{record.id}-{part}",
                        settlement_id=record.id,
                        provider=self.provider,
                        batches=(batch,),
                        circuit_size=size,
                        part=part,
                        parts=parts,
                    )
                )
        self.metrics.settlement("requested")
        log.info(
            "settlement %s requested: %d users, %d requests (%s)",
            record.id,
            len(record.parts),
            record.request_count,
            ", ".join(record.reasons),
        )
        return record

    # ------------------------------------------------------------ proofs in, transaction out

    async def on_proof_ready(self, event: ProofReadyV1) -> None:
        async with self._lock:
            record = await self.records.get(event.settlement_id)
            if record is None or record.status is not Status.PROVING:
                # A redelivery, an attempt already given up, or a copy of a proof stored again
                # (a settlement request copied back to the prover): one line, nothing done.
                log.info(
                    "proof of settlement %s part %d ignored: %s",
                    event.settlement_id,
                    event.part,
                    "no such settlement" if record is None else f"it is {record.status}",
                )
                return
            if not self.evidence.proofs(record, event):
                return
            updated = record.with_part(event.part, event.proofs)
            if updated is not None:
                record = updated
                await self.records.save(record)
            # else this part is in already: a redelivery. If every part is in and the record
            # still waits to be sent, the last try failed (the chain was away): send it now.
        if not record.all_proved:
            return  # the other parts are still being proven
        original = record
        proofs = record.proofs
        refused: dict[str, str] = {}
        if self._fence is not None:
            await self._fence()  # a deposed leader sends nothing (zg_billing.lease)
        while True:
            sending = [p for p in proofs if p.user.lower() not in refused]
            if not sending:
                break
            try:
                with _tracer.start_as_current_span("settleFees") as span:
                    span.set_attribute("zg.settlement_id", record.id)
                    span.set_attribute("zg.provider", record.provider)
                    span.set_attribute("zg.users", sorted({p.user for p in sending}))
                    span.set_attribute("zg.chunks", len(sending))
                    result = await self.chain.settle_fees([p.calldata for p in sending])
                    span.set_attribute("zg.tx_hash", result.tx_hash)
                    span.set_attribute("zg.gas_used", result.gas_used)
            except ChainUnavailable:
                raise  # the message is redelivered and this runs again
            except ContractRevert as revert:
                index = revert.args_by_name.get("proofIndex")
                if not isinstance(index, int) or not 0 <= index < len(sending):
                    for proof in sending:
                        refused[proof.user.lower()] = revert.name or "reverted"
                    break
                refused[sending[index].user.lower()] = revert.name
                self.metrics.retry(revert.name)
                log.warning(
                    "settlement %s: chunk of %s refused (%s); sending the rest",
                    record.id,
                    sending[index].user,
                    revert.name,
                )
                continue
            record = original.model_copy(
                update={
                    "status": Status.SUBMITTED,
                    "chunks": tuple(_chunk_state(p) for p in sending),
                    "tx_hash": result.tx_hash,
                    "gas_used": result.gas_used,
                    "submitted_ms": self._clock(),
                    "parts": tuple(p for p in record.parts if p.user.lower() not in refused),
                }
            )
            self.metrics.settlement("submitted")
            async with self._lock:
                for chunk in record.chunks:
                    if await self.records.was_confirmed_early(chunk.user, chunk.final_nonce):
                        record = (
                            record.with_chunk_confirmed(chunk.user, chunk.final_nonce) or record
                        )
                await self._save_progress(record)
            break
        if refused:
            await self._give_back(original, refused, "; ".join(sorted(set(refused.values()))))
        if not any(p.user.lower() not in refused for p in proofs):
            await self._close(record, Status.FAILED, "every chunk was refused")

    async def on_proof_failed(self, event: ProofFailedV1) -> None:
        record = await self.records.get(event.settlement_id)
        if record is None or record.status is not Status.PROVING:
            return
        if not self.evidence.proof_failure(record, event):
            return
        if not event.retryable and event.user is not None:
            # The prover can never prove this user's requests (a signature the circuit
            # rejects): write off those billing finds invalid itself, report them, and settle
            # the others in a new attempt. Billing finding none: the event is not believed.
            part = next(p for p in record.parts if p.user.lower() == event.user.lower())
            nonces = [r.nonce for r in part.requests]
            bad = set(
                await self.evidence.invalid_signatures(
                    part.user, await self.book.entries(part.user, self.provider, nonces)
                )
            )
            if not bad:
                self.evidence.refuse(
                    event.SUBJECT,
                    f"settlement {record.id}: every request of {part.user} verifies "
                    f"({event.reason}); proven again if no proof comes",
                )
                return
            await self.book.write_off(part.user, self.provider, sorted(bad))
            self.metrics.written_off(len(bad))
            gone = tuple(r for r in part.requests if r.nonce in bad)
            await self._report(record.id, event.reason, gone, part.user)
        await self._give_back(record, {u.lower(): event.reason for u in record.users}, "")
        await self._close(record, Status.FAILED, event.reason)

    # ------------------------------------------------------------ confirmations

    async def on_fees_settled(self, event: FeesSettledV1) -> None:
        if event.provider.lower() != self.provider.lower():
            return
        if not await self.evidence.on_chain(
            event, FeesSettled, "user", "provider", "amount", "final_nonce"
        ):
            return
        count, fee = await self.book.confirm(event.user, event.provider, event.final_nonce)
        async with self._lock:
            records = await self.records.open_records()
            if count and fee != event.amount:
                _log_fee_difference(event, fee, records)
            for record in records:
                updated = record.with_chunk_confirmed(event.user, event.final_nonce)
                if updated is not None:
                    await self._save_progress(updated)
                    return
            # A later chunk's FeesSettled handled first confirms this one's requests in the book
            # too (count 0), so the book cannot tell a copy from a chunk of a settlement whose
            # receipt is not in yet: the settlement's plan can.
            awaited = any(
                r.status is Status.PROVING and r.plans(event.user, event.final_nonce)
                for r in records
            )
            if not count and not awaited:
                # Its requests were confirmed already and no settlement waits for it: a copy
                # (stored again on the bus) or a redelivery. Noting it early would leave state.
                log.info(
                    "FeesSettled for %s up to nonce %d: confirmed already, nothing to do",
                    event.user,
                    event.final_nonce,
                )
                return
            # The indexer can be faster than the receipt: remember it for the submitter.
            await self.records.note_early_confirmation(event.user, event.final_nonce)

    async def _save_progress(self, record: SettlementRecord) -> None:
        if record.all_confirmed:
            await self._confirmed(record)
        else:
            await self.records.save(record)

    async def _confirmed(self, record: SettlementRecord) -> None:
        now = self._clock()
        for user in record.users:
            await self.book.release(user, self.provider, record.id)
            await self.attempts.reset(account_tag(user, self.provider))
        await self.records.save(record.model_copy(update={"status": Status.CONFIRMED}))
        lag_s = max(0.0, (now - record.oldest_served_ms) / 1000)
        self.metrics.settlement("confirmed")
        self.metrics.confirmed(lag_s, record.settled_requests, record.gas_used)
        await self.publish(
            SettlementConfirmedV1(
                event_id=self._event_id(f"settled-{record.id}"),
                settlement_id=record.id,
                provider=self.provider,
                tx_hash=record.tx_hash,
                chunks=tuple(
                    SettledChunk(
                        user=c.user,
                        init_nonce=c.init_nonce,
                        final_nonce=c.final_nonce,
                        total_fee=c.total_fee,
                        request_count=c.request_count,
                    )
                    for c in record.chunks
                ),
                total_fee=sum(c.total_fee for c in record.chunks),
                gas_used=record.gas_used,
                lag_seconds=lag_s,
            )
        )
        log.info(
            "settlement %s confirmed: %d requests, %d gas (tx %s)",
            record.id,
            record.settled_requests,
            record.gas_used,
            record.tx_hash,
        )

    async def on_refund_requested(self, event: RefundRequestedV1) -> None:
        """The user asked for a refund: settle the account at the next pass (believed only if
        the chain has the request: each settlement costs gas)."""
        if event.provider.lower() != self.provider.lower():
            return
        if await self.evidence.on_chain(
            event, RefundRequested, "user", "provider", "index", "amount", "unlock_at"
        ):
            await self.book.flag_due(event.user, event.provider, Reason.REFUND)

    async def on_signer_rotated(self, event: SignerRotatedV1) -> None:
        """The user rotated their key: settle the account at the next pass, while the contract
        still takes the previous key (believed only if the chain has the rotation)."""
        if event.provider.lower() != self.provider.lower():
            return
        if await self.evidence.on_chain(
            event, SignerRotated, "user", "provider", "previous_expires_at"
        ):
            await self.book.flag_due(event.user, event.provider, Reason.ROTATION)

    def settle_now_wait(self) -> float:
        """Seconds until a SettleNow command is honoured again (0: now); taking the slot."""
        now = self._clock()
        wait = (self._settle_now_ms + self.config.settle_now_interval_ms - now) / 1000
        if self._settle_now_ms and wait > 0:
            return wait
        self._settle_now_ms = now
        return 0.0

    async def settle_now(self, user: str | None) -> list[Address]:
        """Flags the user's account (or every account with unsettled requests) to be settled at
        the next pass; returns the accounts flagged."""
        summaries = [
            s
            for s in await self.book.due_accounts()
            if s.provider.lower() == self.provider.lower()
            and (user is None or s.user.lower() == user.lower())
        ]
        for summary in summaries:
            await self.book.flag_due(summary.user, self.provider, Reason.MANUAL)
        return [s.user for s in summaries]

    async def on_reorg(self) -> None:
        """Blocks were dropped: every submitted settlement is re-checked on the next tick."""
        for record in await self.records.open_records():
            if record.status is Status.SUBMITTED:
                await self.records.save(record.model_copy(update={"submitted_ms": 0}))

    # ------------------------------------------------------------ late work

    async def _check_late(self, now: int) -> None:
        async with self._lock:
            await self._check_late_locked(now)

    async def _check_late_locked(self, now: int) -> None:
        for record in await self.records.open_records():
            if record.status is Status.PROVING and now - record.created_ms > (
                self.config.proof_timeout_ms
            ):
                self.metrics.retry("proof_timeout")
                await self._give_back(record, {u.lower(): "no proof" for u in record.users}, "")
                await self._close(record, Status.FAILED, "no proof in time")
            elif record.status is Status.SUBMITTED and now - record.submitted_ms > (
                self.config.confirm_timeout_ms
            ):
                await self._recheck(record, now)

    async def _recheck(self, record: SettlementRecord, now: int) -> None:
        """No confirmation in time. A chunk the chain settled `confirmations` blocks deep is
        confirmed from the chain itself: the indexer's FeesSettled may never come (its event
        id is public once the block is, so anyone could publish first under it and have
        JetStream drop it). One the chain has less deep: keep waiting. One the chain lacks
        (dropped, reorged away): its requests go back to the book to be settled again."""
        missing = []
        for chunk in record.chunks:
            if chunk.confirmed:
                continue
            account = await self.chain.get_account(chunk.user, self.provider)
            if account.nonce < chunk.final_nonce:
                missing.append(chunk)
            elif await self._settled_deep(chunk):
                count, fee = await self.book.confirm(chunk.user, self.provider, chunk.final_nonce)
                log.warning(
                    "settlement %s: %s's nonces up to %d confirmed from the chain, no FeesSettled "
                    "having come (%d requests, %d wei)",
                    record.id,
                    chunk.user,
                    chunk.final_nonce,
                    count,
                    fee,
                )
                record = record.with_chunk_confirmed(chunk.user, chunk.final_nonce) or record
        if not missing:
            if record.all_confirmed:
                await self._confirmed(record)
            else:
                await self.records.save(record.model_copy(update={"submitted_ms": now}))
            return
        self.metrics.retry("not_on_chain")
        await self._give_back(
            record, {c.user.lower(): "transaction not on chain" for c in missing}, ""
        )
        confirmed_users = {c.user.lower() for c in record.chunks if c.confirmed}
        pending = [c for c in record.chunks if not c.confirmed and c not in missing]
        if pending:  # wait for the rest, without the chunks that will be settled again
            await self.records.save(
                record.model_copy(
                    update={
                        "chunks": tuple(c for c in record.chunks if c not in missing),
                        "submitted_ms": now,
                    }
                )
            )
        elif confirmed_users:
            await self._confirmed(
                record.model_copy(
                    update={"chunks": tuple(c for c in record.chunks if c not in missing)}
                )
            )
        else:
            await self._close(record, Status.FAILED, "transaction not on chain")

    async def _settled_deep(self, chunk: ChunkState) -> bool:
        """Whether the chain had settled the chunk `confirmations` blocks below its head."""
        deep = await self.chain.w3.eth.block_number - self.config.confirmations
        if deep < 0:
            return False
        try:
            account = await self.chain.get_account(chunk.user, self.provider, block=deep)
        except ContractRevert:  # the account did not exist yet at that block
            return False
        return account.nonce >= chunk.final_nonce

    # ------------------------------------------------------------ giving requests back

    async def _give_back(
        self, record: SettlementRecord, users: dict[str, str], reason: str
    ) -> None:
        """Frees these users' requests for a later attempt, with their account re-read from the
        chain (a stale balance or nonce may be why the attempt failed)."""
        now = self._clock()
        for part in record.parts:
            if part.user.lower() not in users:
                continue
            account = await self.accounts.load_from_chain(self.chain, part.user, self.provider)
            passed = [r for r in part.requests if r.nonce <= account.nonce]
            if passed:
                # The chain is past these nonces: our own earlier transaction settled them and
                # its FeesSettled has not reached us yet (it will confirm nothing twice).
                count, fee = await self.book.confirm(part.user, self.provider, account.nonce)
                log.warning(
                    "settlement %s: the chain settled %s's nonces up to %d before their "
                    "confirmation arrived (%d requests, %d wei)",
                    record.id,
                    part.user,
                    account.nonce,
                    count,
                    fee,
                )
            await self.book.release(part.user, self.provider, record.id)
            await self.book.flag_due(part.user, self.provider, Reason.RETRY)
            tries = await self.attempts.failed(account_tag(part.user, self.provider), now)
            why = users[part.user.lower()] or reason
            log.warning(
                "settlement %s: %s's requests go back to the book (%s, attempt %d)",
                record.id,
                part.user,
                why,
                tries,
            )
            await self.publish(
                SettlementFailedV1(
                    event_id=self._event_id(f"failed-{record.id}-{part.user.lower()}"),
                    settlement_id=record.id,
                    provider=self.provider,
                    reason=why,
                    attempt=tries,
                )
            )

    async def _report(
        self,
        settlement_id: str,
        reason: str,
        requests: tuple[PartRequest, ...],
        user: Address,
    ) -> None:
        await self.publish(
            SettlementFailedV1(
                event_id=self._event_id(f"written-off-{settlement_id}-{user.lower()}"),
                settlement_id=settlement_id,
                provider=self.provider,
                reason=reason,
                attempt=0,
                written_off=tuple(
                    UnsettledRequest(user=user, nonce=r.nonce, fee=r.fee, request_id=r.request_id)
                    for r in requests
                ),
            )
        )

    async def _close(self, record: SettlementRecord, status: Status, failure: str) -> None:
        latest = await self.records.get(record.id) or record
        await self.records.save(latest.model_copy(update={"status": status, "failure": failure}))
        self.metrics.settlement(status.value)


MAX_LINKS = 32


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


class _Draft:
    """A settlement being filled: users' sealed requests until the transaction is full."""

    def __init__(self, now_ms: int) -> None:
        self.id = _new_id()
        self.parts: list[UserPart] = []
        self.reasons: set[str] = set()
        self.oldest_ms = now_ms
        self.chunks = 0
        self.chunks_to_prove: list[tuple[UserBatch, int]] = []  # (one chunk's batch, its N)
        self._traces: list[tuple[int, str]] = []  # (served ms, traceparent)

    def add(
        self, user: Address, provider: Address, sealed: Sealed, reason: str, plan: list[int]
    ) -> None:
        self.parts.append(_part(user, sealed))
        batch = _batch(user, provider, sealed)
        ordered = sorted(batch.requests, key=lambda r: r.nonce)
        for size, requests in zip(plan, cut(ordered, plan), strict=False):
            self.chunks_to_prove.append(
                (batch.model_copy(update={"requests": tuple(requests)}), size)
            )
        self.reasons.add(reason)
        self.oldest_ms = min(self.oldest_ms, *(r.entry.t for r in sealed.requests))
        self.chunks += len(plan)
        self._traces += [(r.entry.t, r.entry.tp) for r in sealed.requests if r.entry.tp]

    def parent_context(self) -> Context | None:
        if not self._traces:
            return None
        return _propagator.extract({"traceparent": min(self._traces)[1]})

    def links(self) -> list[trace.Link]:
        links = []
        for _, traceparent in sorted(self._traces)[1 : MAX_LINKS + 1]:
            context = trace.get_current_span(
                _propagator.extract({"traceparent": traceparent})
            ).get_span_context()
            if context.is_valid:
                links.append(trace.Link(context))
        return links


def _part(user: Address, sealed: Sealed) -> UserPart:
    return UserPart(
        user=user,
        requests=tuple(
            PartRequest(nonce=r.nonce, fee=r.fee, request_id=r.entry.id) for r in sealed.requests
        ),
    )


def _batch(user: Address, provider: Address, sealed: Sealed) -> UserBatch:
    return UserBatch(
        user=user,
        signer=sealed.signer,
        requests=tuple(
            SignedRequest.from_signature_hex(
                user=user, provider=provider, nonce=r.nonce, fee=r.fee, signature=r.entry.sig
            )
            for r in sealed.requests
        ),
    )


def _chunk_range(batch: UserBatch) -> ChunkRange:
    nonces = [r.nonce for r in batch.requests]
    return ChunkRange(
        user=batch.user,
        init_nonce=min(nonces),
        final_nonce=max(nonces),
        total_fee=sum(r.fee for r in batch.requests),
        request_count=len(batch.requests),
    )


def _chunk_state(proof: ChunkProof) -> ChunkState:
    return ChunkState(
        user=proof.user,
        init_nonce=proof.init_nonce,
        final_nonce=proof.final_nonce,
        total_fee=proof.total_fee,
        request_count=proof.request_count,
    )


def _log_fee_difference(event: FeesSettledV1, fee: int, records: list[SettlementRecord]) -> None:
    """The book's unconfirmed fee up to the event's nonce is not what the event paid. A later
    chunk's event handled before the same settlement's earlier chunks' is expected to: its
    confirmation takes in their requests too, so the book's fee is the sum of a run of planned
    chunks ending with this one. Anything else is a real difference."""
    mine = [c for r in records for c in r.planned_for(event.user)]
    upto = sorted(
        (c for c in mine if c.final_nonce <= event.final_nonce), key=lambda c: c.final_nonce
    )
    # The fees of the runs of chunks ending with this one: it alone, it and the one before, ...
    runs = itertools.accumulate(c.total_fee for c in reversed(upto))
    own = upto[-1] if upto and upto[-1].final_nonce == event.final_nonce else None
    if own is not None and own.total_fee == event.amount and fee in runs:
        log.info(
            "FeesSettled for %s up to nonce %d came before its settlement's earlier chunks' "
            "events: the book confirmed %d wei with them, as planned",
            event.user,
            event.final_nonce,
            fee,
        )
        return
    log.error(
        "FeesSettled for %s up to nonce %d paid %d wei; the book had %d wei",
        event.user,
        event.final_nonce,
        event.amount,
        fee,
    )
