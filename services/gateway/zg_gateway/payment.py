# SPDX-License-Identifier: Apache-2.0
"""The payment headers of a request (docs/protocol.md, section 5) and the checks that need no
state."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from multidict import MultiMapping

from zg_gateway.errors import BadRequest, BadSignature
from zg_shared.chain.types import checksum
from zg_shared.crypto import PublicKey, Signature, request_message, verify_poseidon

PAYMENT_HEADERS = (
    "Address",
    "Nonce",
    "Input-Fee",
    "Previous-Output-Fee",
    "Fee",
    "Signature",
    "ZG-Output-Price",  # optional, unsigned: the output price the request was signed under
    "ZG-Counting-Rule",  # optional, unsigned: the counting rule the request was signed under
    "ZG-Receipt-Signer",  # optional, unsigned: the receipt signer the request was signed under
)
MAX_RULE_NAME = 64
U64 = 1 << 64
U128 = 1 << 128
# Digits of the largest number a header may hold (2^128 has 39), checked before int() reads it:
# int() of a 5,000-digit string raises, and its cost grows with the length.
MAX_DIGITS = 40


@dataclass(frozen=True, slots=True)
class Payment:
    """The parsed headers: built per request, so a plain dataclass (checked by parse_payment)."""

    user: str
    nonce: int
    input_fee: int
    previous_output_fee: int
    fee: int
    signature: Signature
    # The output price per unit the signer read (ZG-Output-Price), if it says: a request
    # signed under a price below the one charged is refused, not served.
    output_price: int | None = None
    # The counting rule the signer read (ZG-Counting-Rule), if it says: counted under it when
    # it is the service's rule or the one just replaced (service.py, `_rule_for`).
    counting_rule: str | None = None
    # The receipt signer the signer read (ZG-Receipt-Signer), if it says: during a rotation
    # the receipt is signed with that key when this gateway holds it (service.py).
    receipt_signer: str | None = None

    @property
    def signature_hex(self) -> str:
        return self.signature.to_hex()


# Checksumming is keccak in Python; the same few addresses send most requests.
_checksum = functools.lru_cache(maxsize=65_536)(checksum)


def _uint(headers: Mapping[str, str], name: str, limit: int) -> int:
    raw = headers.get(name)
    if raw is None:
        raise BadRequest("missing_header", f"the {name} header is required", param=name)
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(
            "invalid_header", f"{name} must be a non-negative decimal integer", param=name
        )
    if len(text) > MAX_DIGITS or int(text) >= limit:
        raise BadRequest("invalid_header", f"{name} is out of range", param=name)
    return int(text)


def payment_headers(headers: MultiMapping[str]) -> dict[str, str]:
    """The payment headers by their canonical names, from headers whose names are
    case-insensitive (HTTP/2 and many proxies lower-case them); a payment header sent twice is
    refused, since two readers could take different ones."""
    found: dict[str, str] = {}
    for name in PAYMENT_HEADERS:
        values = headers.getall(name, [])
        if len(values) > 1:
            raise BadRequest("duplicate_header", f"the {name} header is sent twice", param=name)
        if values:
            found[name] = values[0]
    return found


def parse_payment(headers: Mapping[str, str]) -> Payment:
    """The payment headers, checked for shape and arithmetic; BadRequest says which is wrong."""
    address = headers.get("Address")
    if address is None:
        raise BadRequest("missing_header", "the Address header is required")
    try:
        user = _checksum(address.strip())
    except ValueError:
        raise BadRequest("invalid_header", "Address must be an Ethereum address") from None
    raw_signature = headers.get("Signature")
    if raw_signature is None:
        raise BadRequest("missing_header", "the Signature header is required")
    try:
        signature = Signature.from_hex(raw_signature.strip())
    except (ValueError, TypeError):
        raise BadRequest("invalid_header", "Signature must be 0x and 96 bytes of hex") from None
    payment = Payment(
        user=user,
        nonce=_uint(headers, "Nonce", U64),
        input_fee=_uint(headers, "Input-Fee", U128),
        previous_output_fee=_uint(headers, "Previous-Output-Fee", U128),
        fee=_uint(headers, "Fee", U128),
        signature=signature,
        output_price=(
            _uint(headers, "ZG-Output-Price", U128) if "ZG-Output-Price" in headers else None
        ),
        counting_rule=_rule_name(headers.get("ZG-Counting-Rule")),
        receipt_signer=_address(headers.get("ZG-Receipt-Signer")),
    )
    if payment.fee != payment.input_fee + payment.previous_output_fee:
        raise BadRequest("fee_mismatch", "Fee must equal Input-Fee + Previous-Output-Fee")
    return payment


def check_input_fee(payment: Payment, input_units: int, input_price: int) -> None:
    required = input_units * input_price
    if payment.input_fee < required:
        raise BadRequest(
            "input_fee_too_low",
            f"Input-Fee {payment.input_fee} is below {input_units} units x {input_price} wei",
            required=required,
        )


def check_output_price(payment: Payment, output_price: int) -> None:
    if payment.output_price is not None and payment.output_price < output_price:
        raise BadRequest(
            "output_price_too_low",
            f"ZG-Output-Price {payment.output_price} is below the output price charged, "
            f"{output_price} wei per unit",
            required=output_price,
        )


def _address(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return _checksum(raw.strip())
    except ValueError:
        raise BadRequest(
            "invalid_header",
            "ZG-Receipt-Signer must be an Ethereum address",
            param="ZG-Receipt-Signer",
        ) from None


def _rule_name(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = raw.strip()
    if not name or len(name) > MAX_RULE_NAME or not name.isascii() or not name.isprintable():
        raise BadRequest(
            "invalid_header",
            f"ZG-Counting-Rule must be a rule's name: printable ASCII, 1 to {MAX_RULE_NAME} "
            "characters",
            param="ZG-Counting-Rule",
        )
    return name


def message_of(payment: Payment, provider: str) -> int:
    """M = Poseidon(user, provider, nonce, fee): what the user signed, and the receipt's
    request hash."""
    return request_message(payment.user, provider, payment.nonce, payment.fee)


def check_signature(payment: Payment, message: int, signer: tuple[int, int]) -> None:
    try:
        valid = verify_poseidon(message, payment.signature, PublicKey(*signer))
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise BadSignature("invalid_signature", "the Signature does not verify for this account")
