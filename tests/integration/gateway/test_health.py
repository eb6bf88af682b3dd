# SPDX-License-Identifier: Apache-2.0
"""Readiness names what failed, never where or with what credentials (issue 12 item 8): a
gateway whose RPC (a URL holding an API key) answers 429 said the URL, key and all, in a 503
body on its public port."""

from __future__ import annotations

import aiohttp
from eth_account.signers.local import LocalAccount

from tests.integration.gateway.conftest import Provider, gateway_env, start_gateway, stop_gateway
from tests.integration.rpccount import CountingRpc
from zg_shared.chain import Web3Client
from zg_shared.localservers import free_port
from zg_shared.redaction import redact

KEY, TOKEN = "k3y-0f-th3-rpc", "s3cr3t-t0k3n"


async def test_readiness_never_shows_the_rpc_url_or_its_key(
    provider: Provider,
    keys: list[LocalAccount],
    w3: Web3Client,
    redis_url: str,
    nats_url: str,
) -> None:
    async with CountingRpc(str(w3.provider.endpoint_uri)) as rpc:
        rpc_url = f"http://user:pw@127.0.0.1:{rpc.port}/v3/{KEY}?apikey={TOKEN}"
        env = gateway_env(provider, keys[2], rpc_url, redis_url, nats_url, free_port())
        gateway = await start_gateway(env)
        try:
            rpc.refuse_with = 429
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{gateway.health_url}/readyz") as resp:
                    status, text = resp.status, await resp.text()
                async with http.get(f"{gateway.url}/readyz") as resp:
                    public = resp.status
        finally:
            stop_gateway(gateway)
    assert status == 503, text
    assert "chain" in text
    for secret in (KEY, TOKEN, "pw@", str(rpc.port)):
        assert secret not in text, text
    assert public == 404


def test_redact_keeps_the_scheme_and_hides_the_rest() -> None:
    said = "HTTPError: 429 Too Many Requests for url: https://rpc.example/v3/abc?key=1 (token=xyz)"
    assert redact(said) == (
        "HTTPError: 429 Too Many Requests for url: https://[redacted] (token=[redacted])"
    )
