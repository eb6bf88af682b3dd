# SPDX-License-Identifier: Apache-2.0
"""The client address the per-client budgets are kept by: the peer's, or, behind proxies the
operator trusts, the nearest address in X-Forwarded-For that is not one of theirs."""

from __future__ import annotations

import pytest

from zg_gateway.clients import client_address, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 192.168.1.7, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", [], "203.0.113.5"),  # no proxy
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # an untrusted peer's header: ignored
        ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),  # one proxy
        ("10.1.2.3", ["198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # two, in one header
        ("10.1.2.3", ["198.51.100.1", "192.168.1.7"], "198.51.100.1"),  # two headers
        # Whatever the client wrote to the left of the first untrusted hop is never believed.
        ("10.1.2.3", ["1.2.3.4, 6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["not-an-address, 198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["198.51.100.1, garbage"], "10.1.2.3"),  # a broken proxy: its own address
        ("10.1.2.3", [], "10.1.2.3"),  # a proxy that names nobody
        ("10.1.2.3", ["10.4.4.4"], "10.4.4.4"),  # every hop trusted: the farthest
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        (None, ["198.51.100.1"], ""),
    ],
)
def test_the_client_behind_trusted_proxies(
    peer: str | None, forwarded: list[str], client: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == client


def test_no_trusted_proxy_means_the_peer_whatever_the_header_says() -> None:
    assert client_address("10.1.2.3", ["198.51.100.1"], ()) == "10.1.2.3"


@pytest.mark.parametrize("text", ["nope", "10.0.0.0/33", "10.0.0.0/8,,300.1.1.1"])
def test_a_malformed_network_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="not an address or a network"):
        parse_networks(text)


def test_empty_means_none() -> None:
    assert parse_networks("") == parse_networks(" , ") == ()
