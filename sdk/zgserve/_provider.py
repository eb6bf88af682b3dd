# SPDX-License-Identifier: Apache-2.0
"""What the SDK keeps per provider: the signing key, nonces, the output fees received and not
yet paid, the worst case of the requests in flight, the evidence, and whether the provider
has been stopped."""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from zg_shared.crypto import PublicKey, sign_request
from zgserve._costs import Quote
from zgserve._nonces import NonceAllocator
from zgserve.errors import CeilingExceeded, ProviderStopped, VerificationError
from zgserve.evidence import Evidence, EvidenceRecord, check_record
from zgserve.terms import ServiceTerms

EVIDENCE_KEPT = 1000
# How long after this SDK reads a new receipt signer on chain it still accepts receipts by the
# one it replaced: the provider's gateway reads the chain every 5 s and may sign with the old
# key until then (docs/key-custody.md, "The provider's receipt key").
SIGNER_OVERLAP_S = 30.0


@dataclass(frozen=True)
class SignedPayment:
    nonce: int
    input_fee: int
    previous_output_fee: int
    fee: int
    signature: str
    quote: Quote  # the terms it was signed under, and its worst case

    def headers(self, user: str) -> dict[str, str]:
        return {
            "Address": user,
            "Nonce": str(self.nonce),
            "Input-Fee": str(self.input_fee),
            "Previous-Output-Fee": str(self.previous_output_fee),
            "Fee": str(self.fee),
            "Signature": self.signature,
            # Unsigned: lets the gateway refuse, rather than charge, a request signed under an
            # output price below the one it charges (a rise this SDK has not read yet).
            "ZG-Output-Price": str(self.quote.terms.output_price),
            # Unsigned too: the gateway counts units under the rule this was signed under while
            # the service's change of rule is recent, and refuses it after (read again).
            "ZG-Counting-Rule": self.quote.terms.counting_rule,
            # And the receipt signer it will check: a gateway rotating its key signs with it.
            "ZG-Receipt-Signer": self.quote.terms.signer_address,
        }


@dataclass(frozen=True)
class ReceivedReceipt:
    """A receipt as the provider gave it, for one request."""

    request_id: str
    output_fee: int
    signature: str
    # For a stream abandoned before its end: the response hash the receipt covers.
    relayed_sha256: str | None = None


@dataclass
class ProviderState:
    chain_id: int
    contract: str
    user: str
    provider: str
    signing_key: bytes
    signer: PublicKey
    nonces: NonceAllocator
    evidence_dir: Path | None = None
    unpaid: int = 0
    in_flight: int = 0  # worst-case output fees of the requests not yet concluded
    services: dict[str, ServiceTerms] = field(default_factory=dict)
    records: deque[EvidenceRecord] = field(default_factory=lambda: deque(maxlen=EVIDENCE_KEPT))
    failure: VerificationError | None = None
    served: int = 0
    # Per service: receipt signers the chain registered before its current one (lower case)
    # -> when this SDK read the replacement (its transport's clock).
    replaced_signers: dict[str, dict[str, float]] = field(default_factory=dict)

    def check_usable(self) -> None:
        if self.failure is not None:
            raise ProviderStopped(self.provider, self.failure)

    def sign(self, quote: Quote, max_debt: int) -> SignedPayment:
        """A fresh nonce, and every received-and-unpaid output fee taken into this request.
        Refused (CeilingExceeded) when the requests in flight and this one could leave more
        than `max_debt` owed to the provider."""
        self.check_usable()
        exposure = self.in_flight + quote.worst_output_fee
        if exposure > max_debt:
            what = (
                f"what you could owe provider {self.provider} with this request and the "
                f"{self.in_flight} wei of worst-case output fees in flight"
            )
            raise CeilingExceeded("max_debt", exposure, max_debt, what)
        previous, self.unpaid = self.unpaid, 0
        self.in_flight += quote.worst_output_fee
        nonce = self.nonces.next()
        fee = quote.input_fee + previous
        signature = sign_request(self.signing_key, self.user, self.provider, nonce, fee)
        return SignedPayment(nonce, quote.input_fee, previous, fee, signature.to_hex(), quote)

    def refused(self, payment: SignedPayment) -> None:
        """The request was refused or voided: what it paid of the debt is owed again."""
        self.unpaid += payment.previous_output_fee
        self.in_flight -= payment.quote.worst_output_fee

    def unknown(self, payment: SignedPayment) -> None:
        """The outcome cannot be told (the connection failed, no receipt could be found):
        the debt it carried is not offered again (over-paying would be refused)."""
        self.in_flight -= payment.quote.worst_output_fee

    def receive(
        self,
        service: str,
        endpoint: str,
        payment: SignedPayment,
        request_body: bytes,
        response_body: bytes,
        streamed: bool,
        receipt: ReceivedReceipt,
    ) -> EvidenceRecord:
        """Records one response and its receipt as evidence (not yet judged), with the terms
        in force when the request was signed."""
        record = EvidenceRecord(
            service=service,
            endpoint=endpoint,
            nonce=payment.nonce,
            input_fee=payment.input_fee,
            previous_output_fee=payment.previous_output_fee,
            fee=payment.fee,
            request_signature=payment.signature,
            request_body_b64=base64.b64encode(request_body).decode(),
            response_body_b64=base64.b64encode(response_body).decode(),
            streamed=streamed,
            receipt_id=receipt.request_id,
            output_fee=receipt.output_fee,
            receipt_signature=receipt.signature,
            terms=payment.quote.terms,
            partial=receipt.relayed_sha256 is not None,
            response_body_sha256=receipt.relayed_sha256,
        )
        self.records.append(record)
        return record

    def rotated(self, record: EvidenceRecord, signer: str) -> EvidenceRecord:
        """The record, kept as evidence, with the receipt's signer accepted as a rotation."""
        rotated = record.model_copy(update={"rotated_signer": signer})
        for i in range(len(self.records) - 1, -1, -1):
            if self.records[i] is record:
                self.records[i] = rotated
                break
        return rotated

    def verdict(self, record: EvidenceRecord) -> str | None:
        """Why the record fails under the terms it was signed under, or None."""
        terms = record.terms or self.services[record.service]
        return check_record(record, terms, self.user, self.provider, self.signer)

    def conclude(self, payment: SignedPayment, record: EvidenceRecord) -> None:
        """Judges the record: a good receipt's output fee becomes debt to pay with the next
        request; a bad one stops the provider (VerificationError)."""
        self.in_flight -= payment.quote.worst_output_fee
        reason = self.verdict(record)
        if reason is None:
            self.unpaid += record.output_fee
            self.served += 1
            return
        self.stop(reason)

    def stop(self, reason: str) -> NoReturn:
        if self.failure is None:
            self.failure = VerificationError(self.provider, reason)
            if self.evidence_dir is not None:
                name = (
                    f"evidence-{self.provider}-{self.records[-1].nonce if self.records else 0}.json"
                )
                path = self.export(self.evidence_dir / name)
                self.failure = VerificationError(self.provider, reason, path)
        raise self.failure

    def evidence(self) -> Evidence:
        return Evidence(
            chain_id=self.chain_id,
            contract=self.contract,
            user=self.user,
            provider=self.provider,
            signer=self.signer.to_hex(),
            services=dict(self.services),
            records=list(self.records),
            failure=self.failure.reason if self.failure else None,
        )

    def export(self, path: Path) -> Path:
        return self.evidence().write(path)
