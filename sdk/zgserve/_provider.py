# SPDX-License-Identifier: Apache-2.0
"""What the SDK keeps per provider: the signing key, nonces, the output fees received and not
yet paid, the evidence, and whether the provider has been stopped."""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zg_shared.crypto import PublicKey, sign_request
from zgserve._nonces import NonceAllocator
from zgserve.errors import ProviderStopped, VerificationError
from zgserve.evidence import Evidence, EvidenceRecord, check_record
from zgserve.terms import ServiceTerms

EVIDENCE_KEPT = 1000


@dataclass(frozen=True)
class SignedPayment:
    nonce: int
    input_fee: int
    previous_output_fee: int
    fee: int
    signature: str

    def headers(self, user: str) -> dict[str, str]:
        return {
            "Address": user,
            "Nonce": str(self.nonce),
            "Input-Fee": str(self.input_fee),
            "Previous-Output-Fee": str(self.previous_output_fee),
            "Fee": str(self.fee),
            "Signature": self.signature,
        }


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
    services: dict[str, ServiceTerms] = field(default_factory=dict)
    records: deque[EvidenceRecord] = field(default_factory=lambda: deque(maxlen=EVIDENCE_KEPT))
    failure: VerificationError | None = None
    served: int = 0

    def check_usable(self) -> None:
        if self.failure is not None:
            raise ProviderStopped(self.provider, self.failure)

    def sign(self, input_fee: int) -> SignedPayment:
        """A fresh nonce, and every received-and-unpaid output fee taken into this request."""
        self.check_usable()
        previous, self.unpaid = self.unpaid, 0
        nonce = self.nonces.next()
        fee = input_fee + previous
        signature = sign_request(self.signing_key, self.user, self.provider, nonce, fee)
        return SignedPayment(nonce, input_fee, previous, fee, signature.to_hex())

    def refund(self, payment: SignedPayment) -> None:
        """The request was refused or voided: what it paid of the debt is owed again."""
        self.unpaid += payment.previous_output_fee

    def receive(
        self,
        service: str,
        endpoint: str,
        payment: SignedPayment,
        request_body: bytes,
        response_body: bytes,
        streamed: bool,
        receipt_id: str,
        output_fee: int,
        receipt_signature: str,
    ) -> EvidenceRecord:
        """Records one response and its receipt as evidence (not yet judged)."""
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
            receipt_id=receipt_id,
            output_fee=output_fee,
            receipt_signature=receipt_signature,
            terms=self.services[service],
        )
        self.records.append(record)
        return record

    def replace(self, old: EvidenceRecord, new: EvidenceRecord) -> None:
        for i, kept in enumerate(self.records):
            if kept is old:
                self.records[i] = new
                return

    def verdict(self, record: EvidenceRecord) -> str | None:
        """Why the record fails under the service's current terms, or None."""
        terms = self.services[record.service]
        return check_record(record, terms, self.user, self.provider, self.signer)

    def conclude(self, record: EvidenceRecord, reason: str | None) -> None:
        """A good receipt's output fee becomes debt to pay with the next request; a bad one
        stops the provider (VerificationError)."""
        if reason is None:
            self.unpaid += record.output_fee
            self.served += 1
            return
        self.stop(reason)

    def accept(self, *args: Any, **kwargs: Any) -> None:
        """`receive`, judged under the current terms, then `conclude`."""
        record = self.receive(*args, **kwargs)
        self.conclude(record, self.verdict(record))

    def stop(self, reason: str) -> None:
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
