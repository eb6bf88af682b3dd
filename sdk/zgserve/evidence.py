# SPDX-License-Identifier: Apache-2.0
"""Evidence: the signed requests, response bodies and receipts exchanged with one provider,
in a file that any machine can check offline (`zg verify FILE`, or `verify_evidence`).

What is checked for every record (and, by the SDK, for every response as it arrives), under
the service's terms in force when the request was signed (the record's `terms`):

1. `Fee == Input-Fee + Previous-Output-Fee`, and the user's EdDSA-Poseidon signature over
   `M = Poseidon(user, provider, nonce, fee)` verifies for the account's registered signer
   (the evidence is what the user really sent);
2. the receipt is an EIP-191 signature by the terms' `signerAddress` (or, after the provider
   rotated it, by the record's `rotated_signer`: the signer the chain registered for the
   service when the SDK checked the receipt, which `ServiceUpdated` logs show) over
   `keccak(M || sha256(request body) || sha256(response body) || outputFee)`;
3. the output fee is at most the chargeable output units times the terms' output price
   (`zgserve._costs`: the units the response counts, bounded by the request's `max_tokens`
   and by what the received text can hold). Charging less is the provider's loss and is
   accepted.

A stream the user abandoned before its end is `partial`: its body is what the SDK read, and
the receipt covers `response_body_sha256`, what the gateway relayed (possibly more); the
signature is checked over that hash, and only the request's bound limits its units.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from zg_shared.crypto import PublicKey, Signature, request_message, verify_request
from zg_shared.metering import RULES
from zg_shared.receipts import Receipt, receipt_signer
from zgserve._costs import chargeable_units
from zgserve.terms import ServiceTerms

MAX_FEE = 2**256 - 1


class EvidenceRecord(BaseModel):
    """One request and what came back."""

    model_config = ConfigDict(frozen=True)

    service: str
    endpoint: str = Field(description="chat/completions, completions, embeddings or settle")
    nonce: int
    input_fee: int
    previous_output_fee: int
    fee: int
    request_signature: str = Field(description="0x + 96 bytes: R8x || R8y || S")
    request_body_b64: str
    response_body_b64: str = Field(description="what the receipt's response hash covers")
    streamed: bool
    receipt_id: str
    output_fee: int
    receipt_signature: str
    terms: ServiceTerms | None = Field(
        None, description="the service's terms when the request was signed: what it is judged under"
    )
    partial: bool = Field(
        False, description="a stream abandoned before its end: the body is what was read"
    )
    response_body_sha256: str | None = Field(
        None, description="for a partial record, the hash the receipt covers (what was relayed)"
    )
    rotated_signer: str | None = Field(
        None,
        description="the receipt's signer when not the terms' but one the chain registered for "
        "the service around the request (the provider rotated its receipt key)",
    )

    @property
    def request_body(self) -> bytes:
        return base64.b64decode(self.request_body_b64)

    @property
    def response_body(self) -> bytes:
        return base64.b64decode(self.response_body_b64)


class Evidence(BaseModel):
    format: Literal["zgserve-evidence-v1"] = "zgserve-evidence-v1"
    chain_id: int
    contract: str
    user: str
    provider: str
    signer: str = Field(description="the user's registered BabyJubJub key, 0x + 64 bytes")
    services: dict[str, ServiceTerms]
    records: list[EvidenceRecord]
    failure: str | None = Field(None, description="the SDK's verdict when it stopped")
    exported_at: float = Field(default_factory=time.time)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> Evidence:
        return cls.model_validate_json(path.read_bytes())


class Finding(BaseModel):
    nonce: int
    service: str
    ok: bool
    reason: str = ""


def receipt_signed_by(record: EvidenceRecord, user: str, provider: str) -> str:
    """The address whose key signed the record's receipt (ValueError: malformed)."""
    response_hash = (
        record.response_body_sha256
        if record.partial and record.response_body_sha256
        else hashlib.sha256(record.response_body).hexdigest()
    )
    receipt = Receipt(
        request_hash=request_message(user, provider, record.nonce, record.fee),
        request_body_sha256=hashlib.sha256(record.request_body).hexdigest(),
        response_body_sha256=response_hash,
        output_fee=record.output_fee,
    )
    return receipt_signer(receipt, record.receipt_signature)


def check_record(
    record: EvidenceRecord, terms: ServiceTerms, user: str, provider: str, signer: PublicKey
) -> str | None:
    """None when the record verifies, else why not (the first failed check)."""
    if record.fee != record.input_fee + record.previous_output_fee:
        return "the request's Fee is not Input-Fee + Previous-Output-Fee"
    try:
        signature = Signature.from_hex(record.request_signature)
        if not verify_request(user, provider, record.nonce, record.fee, signature, signer):
            return "the user's request signature does not verify (evidence tampered?)"
    except (ValueError, TypeError) as exc:
        return f"the request signature is malformed: {exc}"
    if not record.receipt_signature:
        return "the response carries no receipt signature"
    if not 0 <= record.output_fee <= MAX_FEE:
        return f"the output fee {record.output_fee} is not a uint256"
    try:
        signed_by = receipt_signed_by(record, user, provider)
    except ValueError as exc:
        return f"the receipt is malformed: {exc}"
    if signed_by.lower() not in {
        a.lower() for a in (terms.signer_address, record.rotated_signer) if a is not None
    }:
        return (
            f"the receipt is signed by {signed_by}, not by the service's registered "
            f"signer {terms.signer_address}"
        )
    rule = RULES.get(terms.counting_rule)
    if rule is None:
        return f"the service counts units by the rule {terms.counting_rule!r}, unknown here"
    chargeable = chargeable_units(
        record.endpoint,
        record.request_body,
        record.response_body,
        record.streamed,
        whole=not record.partial,
        rule=rule,
    )
    allowed = chargeable.units * terms.output_price
    if record.output_fee > allowed:
        return (
            f"the output fee {record.output_fee} is above {chargeable.units} output units x "
            f"{terms.output_price} wei = {allowed} ({chargeable.explain()})"
        )
    return None


def verify_evidence(evidence: Evidence) -> list[Finding]:
    """Every record checked offline; a record whose service terms are missing fails."""
    signer = PublicKey.from_hex(evidence.signer)
    findings = []
    for record in evidence.records:
        terms = record.terms or evidence.services.get(record.service)
        reason = (
            f"no terms for service {record.service!r} in the evidence"
            if terms is None
            else check_record(record, terms, evidence.user, evidence.provider, signer)
        )
        findings.append(
            Finding(
                nonce=record.nonce, service=record.service, ok=reason is None, reason=reason or ""
            )
        )
    return findings
