# SPDX-License-Identifier: Apache-2.0
"""Which client a request came from, for the budgets kept per client address.

Behind a load balancer or an ingress every request arrives from the proxy's address, so every
client would share one budget (and one client could spend it for all). Proxies the operator
names (`GATEWAY_TRUSTED_PROXIES`) are looked through: each appends the address it got the
request from to `X-Forwarded-For`, so reading that header from the right, the first address
that is not a trusted proxy's is the client's. What lies further left was written by the
client and is never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.168.1.7` (CIDRs or single addresses, comma-separated)."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not an address or a network: {part!r}") from None
    return tuple(networks)


def _trusted(hop: str, proxies: Sequence[Network]) -> bool | None:
    """Whether `hop` is a trusted proxy's address (None: it is no address at all)."""
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return None
    return any(address in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]
) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    address in `X-Forwarded-For` (every such header, in order) that is not one."""
    client = peer or ""
    if not proxies or not _trusted(client, proxies):
        return client
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        trusted = _trusted(hop, proxies)
        if trusted is None:
            return client  # not an address: the last proxy that wrote one stands for it
        client = hop
        if not trusted:
            return client
    return client
