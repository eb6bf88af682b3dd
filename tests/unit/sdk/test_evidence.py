# SPDX-License-Identifier: Apache-2.0
"""Offline verification of evidence, with keys made here: what passes, and each way a
receipt or the evidence itself can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account as EthAccount

from zg_shared.chain import Service
from zg_shared.crypto import generate_private_key, prv2pub, request_message
from zg_shared.endpoints import ENDPOINTS
from zg_shared.receipts import Receipt, sign_receipt
from zgserve import Evidence, verify_evidence
from zgserve._costs import SLACK_UNITS_PER_CHOICE, Quote
from zgserve._nonces import NonceAllocator
from zgserve._provider import ProviderState, ReceivedReceipt
from zgserve.errors import CeilingExceeded, ProviderStopped, VerificationError
from zgserve.terms import Limits, ServiceTerms

USER = EthAccount.create()
PROVIDER = EthAccount.create().address
SIGNER = EthAccount.create()
OTHER = EthAccount.create()
MAX_TOKENS = 16
REQUEST = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "a b c"}], "max_tokens": MAX_TOKENS}
).encode()
REPLY = json.dumps(
    {"choices": [{"message": {"content": "x y"}}], "usage": {"completion_tokens": 2}}
).encode()
OUTPUT_PRICE = 20
TERMS = ServiceTerms(
    name="chat", input_price=10, output_price=OUTPUT_PRICE, signer_address=SIGNER.address
)
CHAT = next(path for path, e in ENDPOINTS.items() if e.generates and e.streams)


def _state(tmp_path: Path | None = None) -> ProviderState:
    prv = generate_private_key()
    state = ProviderState(
        chain_id=31337,
        contract=EthAccount.create().address,
        user=USER.address,
        provider=PROVIDER,
        signing_key=prv,
        signer=prv2pub(prv),
        nonces=NonceAllocator(),
        evidence_dir=tmp_path,
    )
    state.services["chat"] = TERMS
    return state


def _quote(input_fee: int = 30, terms: ServiceTerms | None = None) -> Quote:
    return Quote(terms or TERMS, input_fee, max_output_units=MAX_TOKENS)


def _serve(
    state: ProviderState,
    *,
    key: object = SIGNER,
    output_fee: int = 40,
    reply: bytes = REPLY,
    request: bytes = REQUEST,
) -> None:
    payment = state.sign(_quote(), Limits().max_debt)
    receipt = Receipt.for_bodies(
        _message(state, payment.nonce, payment.fee), request, reply, output_fee
    )
    signature = sign_receipt(receipt, key)  # type: ignore[arg-type]
    record = state.receive(
        "chat",
        CHAT,
        payment,
        request,
        reply,
        False,
        ReceivedReceipt("id", output_fee, signature),
    )
    state.conclude(payment, record)


def _message(state: ProviderState, nonce: int, fee: int) -> int:

    return request_message(state.user, state.provider, nonce, fee)


def test_honest_receipts_verify_and_their_fees_are_paid_next() -> None:
    state = _state()
    _serve(state)
    assert state.unpaid == 40
    next_payment = state.sign(_quote(), Limits().max_debt)
    assert (next_payment.previous_output_fee, next_payment.fee) == (40, 70)
    assert state.unpaid == 0
    assert state.in_flight == MAX_TOKENS * OUTPUT_PRICE
    state.refused(next_payment)  # refused: the debt it carried is owed again
    assert state.in_flight == 0
    assert state.unpaid == 40
    assert all(f.ok for f in verify_evidence(state.evidence()))


def test_a_receipt_by_another_key_stops_the_provider_and_writes_evidence(tmp_path: Path) -> None:
    state = _state(tmp_path)
    _serve(state)
    with pytest.raises(VerificationError, match="registered signer") as caught:
        _serve(state, key=OTHER)
    assert caught.value.evidence_path is not None
    written = Evidence.read(caught.value.evidence_path)
    assert [f.ok for f in verify_evidence(written)] == [True, False]
    with pytest.raises(ProviderStopped):
        state.sign(_quote(1), Limits().max_debt)


def test_an_output_fee_above_usage_times_price_fails() -> None:
    state = _state()
    with pytest.raises(VerificationError, match="above 2 output units"):
        _serve(state, output_fee=2 * OUTPUT_PRICE + 1)


def test_units_beyond_max_tokens_fail_whatever_usage_claims() -> None:
    claimed = json.dumps(
        {"choices": [{"message": {"content": "x " * 100}}], "usage": {"completion_tokens": 10**9}}
    ).encode()
    state = _state()
    _serve(state, reply=claimed, output_fee=MAX_TOKENS * OUTPUT_PRICE)  # the bound: accepted
    with pytest.raises(VerificationError, match=f"the request allows {MAX_TOKENS}"):
        _serve(state, reply=claimed, output_fee=(MAX_TOKENS + 1) * OUTPUT_PRICE)


def test_units_that_cannot_fit_the_text_received_fail() -> None:
    """Two words cannot be a billion tokens, nor more tokens than bytes plus the slack."""
    two_words = json.dumps(
        {"choices": [{"message": {"content": "hi you"}}], "usage": {"completion_tokens": 10**9}}
    ).encode()
    unbounded = json.dumps({"model": "m", "messages": [{"role": "user", "content": "a"}]}).encode()
    fits = len(b"hi you") + SLACK_UNITS_PER_CHOICE
    state = _state()
    _serve(state, reply=two_words, request=unbounded, output_fee=fits * OUTPUT_PRICE)
    with pytest.raises(VerificationError, match=f"the received text holds at most {fits}"):
        _serve(state, reply=two_words, request=unbounded, output_fee=(fits + 1) * OUTPUT_PRICE)


def test_the_debt_ceiling_bounds_the_worst_case_in_flight() -> None:
    state = _state()
    worst = MAX_TOKENS * OUTPUT_PRICE
    first = state.sign(_quote(), max_debt=2 * worst)
    state.sign(_quote(), max_debt=2 * worst)
    with pytest.raises(CeilingExceeded, match="max_debt") as caught:
        state.sign(_quote(), max_debt=2 * worst)
    assert (caught.value.value, caught.value.limit) == (3 * worst, 2 * worst)
    state.unknown(first)  # its outcome is unknown: its worst case no longer counts
    state.sign(_quote(), max_debt=2 * worst)


def test_tampered_evidence_fails_offline(tmp_path: Path) -> None:
    state = _state()
    _serve(state)
    path = state.export(tmp_path / "e.json")
    data = json.loads(path.read_text())
    data["records"][0]["fee"] += 1
    data["records"][0]["input_fee"] += 1
    [finding] = verify_evidence(Evidence.model_validate(data))
    assert not finding.ok
    assert "request signature" in finding.reason


def test_terms_are_built_from_the_chains_service() -> None:
    service = Service(
        name="chat",
        url="http://gateway",
        model="m",
        input_price=3,
        output_price=5,
        signer_address=SIGNER.address,
        provider=PROVIDER,
        updated_at=1234,
    )
    terms = ServiceTerms.of(service)
    assert (terms.name, terms.input_price, terms.output_price) == ("chat", 3, 5)
    assert (terms.signer_address, terms.updated_at) == (SIGNER.address, 1234)
    assert terms.counting_rule == service.counting_rule == "words"


def test_a_receipt_by_the_rotated_signer_verifies_offline_and_no_other() -> None:
    """A record the SDK accepted under a rotated receipt signer (`rotated_signer`) verifies
    offline against that signer; the same receipt without it, or naming another, does not."""
    state = _state()
    payment = state.sign(_quote(), Limits().max_debt)
    receipt = Receipt.for_bodies(_message(state, payment.nonce, payment.fee), REQUEST, REPLY, 40)
    signature = sign_receipt(receipt, OTHER)
    record = state.receive(
        "chat", CHAT, payment, REQUEST, REPLY, False, ReceivedReceipt("id", 40, signature)
    )
    assert state.verdict(record) is not None
    rotated = state.rotated(record, OTHER.address)
    assert list(state.records) == [rotated]
    state.conclude(payment, rotated)
    assert state.unpaid == 40
    assert [f.ok for f in verify_evidence(state.evidence())] == [True]
    forged = rotated.model_copy(update={"rotated_signer": EthAccount.create().address})
    assert state.verdict(forged) is not None
