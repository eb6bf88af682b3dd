# SPDX-License-Identifier: Apache-2.0
"""The request message M = Poseidon(user, provider, nonce, fee) and its signatures."""

from __future__ import annotations

import pytest

from zg_shared.crypto import eddsa
from zg_shared.crypto.poseidon_pure import poseidon_reference
from zg_shared.crypto.request import (
    address_to_field,
    request_message,
    sign_request,
    verify_request,
)

USER = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
PROVIDER = "0xab8483f64d9c6d1ecf9b849ae677dd3315835cb2"
PRV = bytes([7]) * 32


def test_message_is_poseidon_of_the_four_fields() -> None:
    m = request_message(USER, PROVIDER, 3, 10**18)
    assert m == poseidon_reference([int(USER, 16), int(PROVIDER, 16), 3, 10**18])
    assert m == request_message(int(USER, 16), int(PROVIDER, 16), 3, 10**18)
    assert m == request_message(USER.lower(), PROVIDER.upper().replace("0X", "0x"), 3, 10**18)


def test_sign_and_verify_request() -> None:
    pub = eddsa.prv2pub(PRV)
    sig = sign_request(PRV, USER, PROVIDER, 1, 5)
    assert verify_request(USER, PROVIDER, 1, 5, sig, pub)
    assert not verify_request(USER, PROVIDER, 2, 5, sig, pub)
    assert not verify_request(USER, PROVIDER, 1, 6, sig, pub)
    assert not verify_request(PROVIDER, USER, 1, 5, sig, pub)


@pytest.mark.parametrize(
    ("nonce", "fee"),
    [(-1, 0), (1 << 64, 0), (0, -1), (0, 1 << 128)],
)
def test_ranges(nonce: int, fee: int) -> None:
    with pytest.raises(ValueError, match=r"nonce|fee"):
        request_message(USER, PROVIDER, nonce, fee)


def test_range_edges_are_accepted() -> None:
    request_message(USER, PROVIDER, (1 << 64) - 1, (1 << 128) - 1)
    request_message(USER, PROVIDER, 0, 0)


@pytest.mark.parametrize(
    "bad",
    [
        "0x" + "1" * 39,
        "0x" + "1" * 41,
        "5B38Da6a701c568545dCfcB03FcB875f56beddC4",
        "0x5B38Da6a701c568545dCfcB03FcB875f56beddc4",  # checksum broken
        1 << 160,
        -1,
    ],
)
def test_bad_addresses(bad: str | int) -> None:
    with pytest.raises(ValueError, match="user"):
        address_to_field(bad, "user")


def test_types_are_checked() -> None:
    with pytest.raises(TypeError):
        request_message(USER, PROVIDER, True, 1)
    with pytest.raises(TypeError):
        request_message(USER, PROVIDER, 1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        address_to_field(True)
