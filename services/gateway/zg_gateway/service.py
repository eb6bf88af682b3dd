# SPDX-License-Identifier: Apache-2.0
"""The gateway's domain logic: which service, which account, may this request be served, and
what it cost. No aiohttp here: routes.py does the HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis

from zg_gateway.body import check_content_type, json_object, model_of, output_bound, wants_stream
from zg_gateway.coalesce import Coalesced
from zg_gateway.config import GatewaySettings
from zg_gateway.errors import (
    BadRequest,
    BadSignature,
    GatewayError,
    NonceConflict,
    NotFound,
    PaymentRequired,
    RateLimited,
)
from zg_gateway.ledger import Admission, InFlight, Ledger, PaidRequest, Refusal, origin
from zg_gateway.outbox import outbox_entry
from zg_gateway.payment import (
    Payment,
    check_input_fee,
    check_output_price,
    check_signature,
    message_of,
    parse_payment,
)
from zg_gateway.prices import PriceWindow
from zg_gateway.ratelimit import RateLimiter, Recent
from zg_gateway.receipts import ReceiptSigner
from zg_gateway.scripts import ScriptRunner
from zg_shared.accounts import AccountStore
from zg_shared.chain import Account, ContractRevert, Service, ServingClient, checksum
from zg_shared.endpoints import ENDPOINTS, Endpoint
from zg_shared.events import RequestServedV1
from zg_shared.metering import RULES, CountingRule, MeteringError
from zg_shared.receipts import Receipt
from zg_shared.registry import ServiceRegistry

log = logging.getLogger(__name__)
RECEIPT_PREFIX = "zg:receipt"
ALIVE_PREFIX = "zg:gateway:alive"
SIGNER_CACHE_SIZE = 100_000
SERVICE_CACHE_S = 5.0
# How long a name the registry and the chain did not know, or an address without an account,
# is answered from memory: a deposit made just after a refused request is seen this much later.
UNKNOWN_S = 2.0
# Output bounds within a declared context: the prompt's tokens, estimated from its input units
# by the counting rule's `tokens_per_unit`, plus the chat template's own tokens.
PROMPT_TEMPLATE_TOKENS = 32


@dataclass(frozen=True)
class Admitted:
    """A request that passed every check and holds its reservation."""

    request_id: str
    service: Service
    backend_url: str
    endpoint: Endpoint
    rule: CountingRule  # the service's, by which its input and output are counted
    payment: Payment
    message: int
    raw_body: bytes
    body: dict[str, Any]
    input_units: int
    max_output_units: int
    reservation: int
    stream: bool
    signer: tuple[int, int]  # the key its signature verified against

    @property
    def paid(self) -> PaidRequest:
        return PaidRequest(
            user=self.payment.user,
            provider=self.service.provider,
            nonce=self.payment.nonce,
            fee=self.payment.fee,
            input_fee=self.payment.input_fee,
            previous_output_fee=self.payment.previous_output_fee,
        )

    def forward_body(self) -> bytes:
        """The body for the backend: the user's, bounded to the reserved output and, for
        streams, asking for the usage chunk that output is metered from. The bound goes in
        every field of the endpoint that engines read, whatever the user set: OpenAI and vLLM
        read `max_completion_tokens` first, llama-cpp-python's chat and TGI only `max_tokens`
        (the only one /completions has). Always re-serialised from what the gateway parsed and
        metered (never the user's bytes: a body with duplicate keys could read differently to
        the backend's parser). It costs microseconds."""
        body = dict(self.body)
        for name in self.endpoint.bound_fields:
            body[name] = self.max_output_units
        if self.service.model:
            # Checked against the registered model at admission; filled in when absent, so a
            # backend serving several models serves the one the user paid for.
            body["model"] = self.service.model
        if self.stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return json.dumps(body).encode()


@dataclass(frozen=True)
class Finished:
    request_id: str
    output_units: int
    output_fee: int
    signature: str


REFUSALS: dict[Refusal, tuple[type[GatewayError], str]] = {
    Refusal.NO_ACCOUNT: (PaymentRequired, "no account with this provider: deposit first"),
    Refusal.NONCE_TOO_LOW: (NonceConflict, "the nonce is at or below the account's sealed nonce"),
    Refusal.NONCE_REUSED: (NonceConflict, "the nonce was already used"),
    Refusal.OVERPAID: (BadRequest, "Previous-Output-Fee exceeds the output fees owed"),
    Refusal.DEBT_TOO_HIGH: (PaymentRequired, "unpaid output fees are above the bound"),
    Refusal.INSUFFICIENT_BALANCE: (PaymentRequired, "the balance does not cover this request"),
    Refusal.INVALID_SIGNATURE: (BadSignature, "the account's signing key has just changed"),
    Refusal.NOTHING_OWED: (BadRequest, "no output fees are owed: there is nothing to settle"),
    Refusal.NOTHING_PAID: (BadRequest, "a fee-only request pays some of the output fees owed"),
}


class GatewayService:
    def __init__(
        self,
        settings: GatewaySettings,
        redis: Redis,
        serving: ServingClient | None,
        receipt_key: LocalAccount,
        clock: Callable[[], float] = time.time,
        *,
        previous_receipt_key: LocalAccount | None = None,
    ) -> None:
        self.settings = settings
        self.provider = settings.provider_address
        self._provider_checksummed = checksum(settings.provider_address)
        self.redis = redis
        self.serving = serving
        self.ledger = Ledger(
            redis,
            ScriptRunner(redis),
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout_ms=settings.redis_wait_timeout_ms,
        )
        self.accounts = AccountStore(redis)
        self.registry = ServiceRegistry(redis)
        self.receipt_key = receipt_key
        self.receipt_signer = ReceiptSigner(receipt_key)
        # During a rotation, the key replaced too: a service's receipts are signed with the
        # one the chain registers for it (`receipt_signer_of`), else with `receipt_signer`.
        self.receipt_signers = {
            key.address.lower(): ReceiptSigner(key)
            for key in (previous_receipt_key, receipt_key)
            if key is not None
        }
        self.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst, clock)
        self.chain_reads = RateLimiter(
            settings.chain_reads_per_client_s, settings.chain_reads_burst, clock
        )
        self._unknown_services = Recent(UNKNOWN_S)
        self._unknown_accounts = Recent(UNKNOWN_S)
        self._service_lookups: Coalesced[tuple[Service, str]] = Coalesced()
        self._signer_lookups: Coalesced[tuple[int, int]] = Coalesced()
        self._clock = clock
        # This process, in what it admits: a sweeper voids a request once its owner is gone.
        self.instance = uuid.uuid4().hex
        self._lock_time: int | None = None
        self._signers: dict[str, tuple[int, int]] = {}
        # name -> (read at, the chain's terms, the terms charged, the backend)
        self._services: dict[str, tuple[float, Service, Service, str]] = {}
        self.prices = PriceWindow(redis, self.provider, settings.price_rise_grace_s)
        # name -> the counting rules it replaced within the grace period -> until when (s)
        self._previous_rules: dict[str, dict[str, float]] = {}

    def _read_chain(self, client: str) -> None:
        """Charges one chain read to the client's address: reads a request can cause before its
        signature is checked (an unknown service or account) are the provider's RPC cost, so
        each client address gets a budget of them; 429 beyond it."""
        if not self.chain_reads.allow(client):
            raise RateLimited(
                "rate_limited",
                "too many requests for unknown accounts or services from this address; slow down",
            )

    async def service(
        self, name: str, client: str = "", *, fresh: bool = False
    ) -> tuple[Service, str]:
        """The service, with the terms charged now, and the backend URL it is served from. The
        backend comes only from this gateway's configuration (`backends`: the allowlist), never
        from Redis or the chain (the URL registered on chain is the gateway's own public one);
        a name it does not list is refused before anything is read. The terms (prices, model,
        signer) come from the chain, cached for `SERVICE_CACHE_S` (`fresh`: read again): a
        change reaches this gateway within that time, and a rewritten registry entry in Redis
        changes nothing. A price rise is charged `price_rise_grace_s` after that (prices.py)."""
        backend = self.settings.backends.get(name)
        if backend is None:
            raise NotFound("unknown_service", f"this provider has no service named {name[:100]!r}")
        now = self._clock()
        cached = self._services.get(name)
        if cached is not None and now - cached[0] < SERVICE_CACHE_S and not fresh:
            return cached[2], cached[3]
        if self._unknown_services.fresh(name, now):
            raise NotFound("unknown_service", f"this provider has no service named {name[:100]!r}")
        return await self._service_lookups.run(
            name, lambda: self._look_up_service(name, backend.rstrip("/"), client)
        )

    async def served_services(self) -> list[Service]:
        """The services this gateway serves (configured and registered), with their terms."""
        served = []
        for name in self.settings.backends:
            with contextlib.suppress(NotFound):
                served.append((await self.service(name))[0])
        return served

    async def _look_up_service(self, name: str, backend: str, client: str) -> tuple[Service, str]:
        now = self._clock()
        if self.serving is None:  # no chain (tests of the gateway alone): the registry's terms
            service = await self.registry.get(self.provider, name)
        else:
            if name not in self._services:
                self._read_chain(client)  # a service served before costs the client nothing
            try:
                service = await self.serving.get_service(self.provider, name)
            except ContractRevert as exc:
                if exc.name != "ServingServiceNotFound":
                    raise
                service = None
        if service is None:
            self._services.pop(name, None)
            self._unknown_services.add(name, now)
            raise NotFound("unknown_service", f"this provider has no service named {name[:100]!r}")
        before = self._services.get(name)
        charged = await self.prices.effective(
            service, before[1] if before is not None else None, now
        )
        self._services[name] = (now, service, charged, backend)
        self._previous_rules[name] = await self.prices.previous_rules(service, now)
        return charged, backend

    def _rule_for(self, payment: Payment, service: Service) -> CountingRule | None:
        """The counting rule to count the request under: the service's, or the one the request
        says it was signed under (ZG-Counting-Rule) when the service replaced it within the
        grace period (prices.py: a change of rule is a change of terms, like a price); None
        when it says another. A request that does not say is counted under the service's."""
        signed = payment.counting_rule
        if signed is None or signed == service.counting_rule:
            return _rule_of(service)
        until = self._previous_rules.get(service.name, {}).get(signed, 0.0)
        return RULES.get(signed) if until > self._clock() else None

    async def signer_of(self, user: str, client: str = "") -> tuple[int, int]:
        """The account's request-signing key, cached in process. It enters the cache from the
        chain, never from Redis alone (whoever can write Redis must not choose the key that
        authorises a user's payments); an account the chain does not know is remembered as
        unknown for `UNKNOWN_S`. The indexer's copy in Redis is compared with the cached key on
        every request: one that differs (a rotation the indexer has seen, `rotateSigner`) sends
        the gateway back to the chain, so the old key is refused as soon as it is seen."""
        cached = self._signers.get(user)
        if cached is not None:
            if await self.accounts.signer(user, self.provider) in (cached, None):
                return cached
            self._signers.pop(user, None)
        if self._unknown_accounts.fresh(user, self._clock()):
            raise PaymentRequired("no_account", "no account with this provider: deposit first")
        return await self._signer_lookups.run(user, lambda: self._look_up_signer(user, client))

    async def _look_up_signer(self, user: str, client: str) -> tuple[int, int]:
        now = self._clock()
        if self.serving is None:
            account = await self.accounts.read(user, self.provider)
            signer = account.signer if account is not None else None
        else:
            if await self.accounts.read(user, self.provider) is None:
                self._read_chain(client)  # a known account's check costs the client nothing
            chain = await self.load_account(user)
            signer = chain.signer if chain is not None else None
        if signer is None:
            self._unknown_accounts.add(user, now)
            raise PaymentRequired("no_account", "no account with this provider: deposit first")
        if len(self._signers) >= SIGNER_CACHE_SIZE:
            self._signers.clear()
        self._signers[user] = signer
        return signer

    async def load_account(self, user: str) -> Account | None:
        """Reads the account from the chain into Redis (until the indexer does it); None if the
        chain has none."""
        assert self.serving is not None
        try:
            return await self.accounts.load_from_chain(self.serving, user, self.provider)
        except ContractRevert as exc:
            if exc.name == "ServingAccountNotFound":
                return None
            raise

    async def admit(
        self,
        name: str,
        path: str,
        headers: Mapping[str, str],
        raw_body: bytes,
        *,
        content_type: str = "application/json",
        client: str = "",
    ) -> Admitted:
        """Every check of docs/protocol.md section 5, in order, ending in the atomic
        reservation. What costs nothing comes first; the signature is checked before the body
        is parsed, and nothing reads the chain for a client over its budget (`_read_chain`)."""
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            raise NotFound("unknown_endpoint", f"no endpoint {path[:100]!r}")
        check_content_type(content_type, raw_body)
        payment = parse_payment(headers)
        service, backend = await self.service(name, client)
        _rule_of(service)  # a rule this gateway does not know: refused before anything is read
        signer = await self.signer_of(payment.user, client)
        message = message_of(payment, self.provider)
        check_signature(payment, message, signer)
        if not self.rate_limiter.allow(payment.user):
            raise RateLimited("rate_limited", "too many requests from this address; slow down")

        if not endpoint.proxied and payment.input_fee:
            raise BadRequest(
                "invalid_header",
                "a fee-only request pays output fees owed, nothing else: Input-Fee must be 0",
                param="Input-Fee",
            )
        fee_only = not endpoint.proxied and not raw_body.strip()
        body = {} if fee_only else json_object(raw_body)
        _check_model(body, service)
        rule = self._rule_for(payment, service)
        if rule is None and self.chain_reads.allow(client):
            # Signed under a counting rule this gateway does not hold: a change on chain it
            # has not read yet (read once more, within the client's budget of chain reads).
            service, backend = await self.service(name, client, fresh=True)
            _check_model(body, service)
            rule = self._rule_for(payment, service)
        rule = _signed_rule(rule, payment, service)
        stream = wants_stream(body, endpoint)
        input_units = _input_units(rule, endpoint, body)
        charges_output = endpoint.generates  # else the output price is no concern of it
        lower = _signed_lower(payment, input_units, service, charges_output)
        if lower and self.chain_reads.allow(client):
            # Signed under lower prices than this gateway holds: a drop it has not read yet
            # (read once more, within the client's budget of chain reads, like an account).
            service, backend = await self.service(name, client, fresh=True)
            rule = _signed_rule(self._rule_for(payment, service), payment, service)
            _check_model(body, service)
            input_units = _input_units(rule, endpoint, body)
        check_input_fee(payment, input_units, service.input_price)
        if charges_output:
            check_output_price(payment, service.output_price)
        max_units = (
            self._output_bound(
                name,
                rule.tokens_per_unit * input_units,
                output_bound(
                    body,
                    endpoint,
                    endpoint.default_max_output_units or self.settings.default_max_output_units,
                ),
            )
            if endpoint.generates
            else 0
        )

        admitted = Admitted(
            request_id=uuid.uuid4().hex,
            service=service,
            backend_url=backend,
            endpoint=endpoint,
            rule=rule,
            payment=payment,
            message=message,
            raw_body=raw_body,
            body=body,
            input_units=input_units,
            max_output_units=max_units,
            reservation=max_units * service.output_price,
            stream=stream,
            signer=signer,
        )
        result = await self._admit(admitted)
        if (
            not result.admitted
            and result.refusal in (Refusal.NO_ACCOUNT, Refusal.INSUFFICIENT_BALANCE)
            and self.serving
            and self.chain_reads.allow(client)
        ):
            # NO_ACCOUNT: Redis lost the account (flushed or restarted) since its signer was
            # cached. INSUFFICIENT_BALANCE: the indexer may lag a fresh deposit, and a fee-only
            # request may pay from refunds still locked. Either way the chain is read once
            # before refusing, as 0G does (within the client's budget).
            account = await self.load_account(payment.user)
            drawable = 0
            if account is not None and not endpoint.proxied:
                drawable = await self.drawable_refunds(account)
            result = await self._admit(admitted, drawable)
        if not result.admitted:
            assert result.refusal is not None
            error, message_text = REFUSALS[result.refusal]
            raise error(result.refusal.value, message_text, detail=list(result.detail))
        return admitted

    def _output_bound(self, service: str, prompt_tokens: int, asked: int) -> int:
        """The bound reserved and sent: the request's, else its endpoint's default (the API's),
        else the gateway's; and where the service declares its model's context, within that
        context less an estimate of the prompt's tokens (the gateway counts input by the
        service's rule, not in the model's tokens). An engine cannot generate past its context
        anyway: it stops, or fails (llama-cpp-python: 500 `llama_decode returned 1`)."""
        context = self.settings.model_context_tokens.get(service)
        if context is None:
            return asked
        prompt = prompt_tokens + PROMPT_TEMPLATE_TOKENS
        return max(1, min(asked, context - prompt))

    async def drawable_refunds(self, account: Account) -> int:
        """The pending refunds `settleFees` can still draw on when the account's next
        settlement lands: those unlocking more than `refund_margin_lock_fraction` of the lock
        time from now. Billing settles an account at once when its user asks for a refund, and
        any request within `max_age_lock_fraction` (0.5) of the lock time, so a refund that far
        from unlocking is still there to be charged. Read through the chain client, whatever
        shape the contract gives refunds."""
        assert self.serving is not None
        if self._lock_time is None:
            self._lock_time = await self.serving.lock_time()  # immutable in the contract
        if not any(not refund.processed for refund in account.refunds):
            return 0
        # The chain's clock, not this machine's: the contract unlocks by block time.
        now = await self.serving.chain_time()
        horizon = now + self.settings.refund_margin_lock_fraction * self._lock_time
        locked = sum(
            refund.amount
            for refund in account.refunds
            if not refund.processed and refund.created_at + self._lock_time > horizon
        )
        return min(locked, account.pending_refund)

    async def _admit(self, admitted: Admitted, drawable_refunds: int = 0) -> Admission:
        now_ms = int(self._clock() * 1000)
        return await self.ledger.admit(
            admitted.paid,
            admitted.reservation,
            self.settings.debt_bound_wei,
            now_ms,
            origin(self.instance, admitted.request_id, admitted.service.name),
            drawable_refunds,
            admitted.signer,
            fee_only=not admitted.endpoint.proxied,
        )

    async def finish(
        self,
        admitted: Admitted,
        *,
        charged: bool,
        output_units: int,
        response_sha256: str,
        reason: str,
    ) -> Finished:
        """Books the outcome, signs and stores the receipt, and queues the served event."""
        units = min(output_units, admitted.max_output_units) if charged else 0
        output_fee = units * admitted.service.output_price
        receipt = Receipt(
            request_hash=admitted.message,
            request_body_sha256=_sha256(admitted.raw_body),
            response_body_sha256=response_sha256,
            output_fee=output_fee,
        )
        signer = self.receipt_signer_of(admitted.service.name)
        # The receipt by the key the user's SDK holds as the service's signer, if this gateway
        # holds it too (a rotation: both keys registered, one just before the other); billing's
        # attestation by the key the chain registers.
        named = admitted.payment.receipt_signer
        by = self.receipt_signers.get(named.lower(), signer) if named else signer
        signature = by.sign(receipt) if charged else ""
        stored = None
        if charged:
            value = json.dumps(
                {
                    "id": admitted.request_id,
                    "signature": signature,
                    **receipt.model_dump(mode="json"),
                }
            )
            stored = (receipt_key(admitted.request_id), value, self.settings.receipt_ttl_s)
        event = signer.attest(
            served_event(
                event_id=admitted.request_id,
                service=admitted.service.name,
                user=admitted.payment.user,
                provider=self._provider_checksummed,
                nonce=admitted.payment.nonce,
                fee=admitted.payment.fee,
                input_fee=admitted.payment.input_fee,
                previous_output_fee=admitted.payment.previous_output_fee,
                signature=admitted.payment.signature_hex,
                input_units=admitted.input_units,
                output_units=units,
                output_fee=output_fee,
                outcome="charged" if charged else "voided",
                reason=reason,
                streamed=admitted.stream,
                signer=admitted.signer,
            )
        )
        await self.ledger.finish(
            admitted.payment.user,
            self.provider,
            admitted.payment.nonce,
            charged=charged,
            output_fee=output_fee,
            outbox_entry=outbox_entry(event),
            receipt=stored,
        )
        return Finished(admitted.request_id, units, output_fee, signature)

    async def receipt(self, request_id: str) -> dict[str, Any]:
        raw = await self.redis.get(receipt_key(request_id))
        if raw is None:
            raise NotFound("unknown_receipt", f"no receipt {request_id!r} (unknown or expired)")
        found: dict[str, Any] = json.loads(raw)
        return found

    async def beat(self) -> None:
        """Says this gateway process is alive, for `alive_ttl_s`: the sweepers of the others
        leave its requests in flight alone while it says so."""
        await self.redis.set(
            alive_key(self.instance), "1", ex=max(1, round(self.settings.alive_ttl_s))
        )

    async def sweep_stale(self) -> int:
        """Voids requests that no live gateway will finish: admitted by a process whose
        heartbeat lapsed (killed: SIGKILL, OOM, a lost node) more than `alive_ttl_s` ago, or
        admitted longer ago than `stale_after_s` whoever holds them. Each is booked and its
        voided served event queued in one atomic step, like any other outcome: billing seals
        an account's nonces only once it knows every one's fate."""
        now = self._clock()
        orphaned_before = int((now - self.settings.alive_ttl_s) * 1000)
        stale_before = int((now - self.settings.stale_after_s) * 1000)
        alive: dict[str, bool] = {self.instance: True}
        voided = 0
        async for entry in self.ledger.in_flight():
            if entry.admitted_ms >= orphaned_before:
                continue
            if entry.admitted_ms >= stale_before:
                if not entry.owner:
                    continue
                if entry.owner not in alive:
                    alive[entry.owner] = bool(await self.redis.exists(alive_key(entry.owner)))
                if alive[entry.owner]:
                    continue
            voided += await self.ledger.finish(
                entry.user,
                entry.provider,
                entry.nonce,
                charged=False,
                outbox_entry=outbox_entry(self._swept_event(entry)),
            )
        return voided

    async def sweep(self) -> None:
        voided = await self.sweep_stale()
        if voided:
            log.warning("voided %d requests whose gateway stopped mid-flight", voided)

    def _swept_event(self, entry: InFlight) -> RequestServedV1:
        """The voided event of a swept request, attested like every served event."""
        event = served_event(
            event_id=entry.request_id or uuid.uuid4().hex,
            service=entry.service,
            user=checksum(entry.user),
            provider=self._provider_checksummed,
            nonce=entry.nonce,
            fee=entry.fee,
            input_fee=entry.fee - entry.previous_output_fee,
            previous_output_fee=entry.previous_output_fee,
            signature="",
            input_units=0,
            output_units=0,
            output_fee=0,
            outcome="voided",
            reason="gateway_stopped",
            streamed=False,
        )
        return self.receipt_signer_of(entry.service).attest(event)

    def receipt_signer_of(self, service: str) -> ReceiptSigner:
        """The key the chain registers for the service, as this process last read it, when it
        holds that key: during a rotation the switch follows the chain (the users' SDKs and
        billing check receipts and served events against it), else the configured key."""
        cached = self._services.get(service)
        registered = cached[1].signer_address.lower() if cached is not None else ""
        return self.receipt_signers.get(registered, self.receipt_signer)


def alive_key(instance: str) -> str:
    return f"{ALIVE_PREFIX}:{instance}"


def served_event(**fields: Any) -> RequestServedV1:
    """The served event from values the gateway has already checked: addresses checksummed
    (`parse_payment`, and the provider's once at start), amounts parsed within their bounds,
    counts from len() and min(). Built without re-validating: validation re-checksums both
    addresses, a keccak each, which was most of the event's cost (40 us per request).
    tests/unit/gateway/test_served_event.py holds it equal to the validated model."""
    return RequestServedV1.model_construct(**fields)


def receipt_key(request_id: str) -> str:
    return f"{RECEIPT_PREFIX}:{request_id}"


def _rule_of(service: Service) -> CountingRule:
    """The counting rule the service registered on chain, which the user's SDK reads too."""
    rule = RULES.get(service.counting_rule)
    if rule is None:
        raise GatewayError(
            "unknown_counting_rule",
            f"service {service.name!r} is registered with the counting rule "
            f"{service.counting_rule[:100]!r}, which this gateway does not know "
            f"(it knows {', '.join(sorted(RULES))}); nothing was charged",
        )
    return rule


def _input_units(rule: CountingRule, endpoint: Endpoint, body: dict[str, Any]) -> int:
    try:
        return rule.total(endpoint.input_texts(body))
    except MeteringError as exc:
        raise BadRequest("invalid_body", str(exc), param=exc.field) from exc


def _signed_rule(rule: CountingRule | None, payment: Payment, service: Service) -> CountingRule:
    if rule is not None:
        return rule
    raise BadRequest(
        "counting_rule_changed",
        f"service {service.name!r} counts units by the rule {service.counting_rule!r}, not "
        f"{(payment.counting_rule or '')[:64]!r} (ZG-Counting-Rule): read its terms again and "
        "sign again; nothing was charged",
        required=service.counting_rule,
    )


def _signed_lower(
    payment: Payment, input_units: int, service: Service, charges_output: bool
) -> bool:
    """Whether the request was signed under lower prices than `service`'s."""
    output = payment.output_price
    below = charges_output and output is not None and output < service.output_price
    return below or payment.input_fee < input_units * service.input_price


def _check_model(body: dict[str, Any], service: Service) -> None:
    """A request names the registered service's model or none (it is then filled in): an
    engine serving several models, or one that serves its default for any name, must not
    serve another model under this service's prices."""
    model = model_of(body)
    if model is None or not service.model:
        return
    if model != service.model:
        raise NotFound(
            "model_not_found",
            f"service {service.name!r} serves model {service.model!r}, not {model[:100]!r}",
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
