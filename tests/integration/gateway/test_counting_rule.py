# SPDX-License-Identifier: Apache-2.0
"""The gateway counts a service's units by the rule the service registered on chain
(`countingRule`): one it does not know is refused, charging nothing, where before it counted
words whatever the service said."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.gateway.conftest import INPUT_PRICE, OUTPUT_PRICE, Provider, chat
from zg_shared.chain import ServiceParams


@pytest.mark.parametrize("gateway_overrides", [{"also_served": ["letters"]}])
async def test_a_service_registered_with_an_unknown_rule_is_refused_and_nothing_changes(
    provider: Provider, keys: list[LocalAccount]
) -> None:
    await provider.serving.as_sender(keys[1]).add_or_update_service(
        ServiceParams(
            name="letters",
            url=provider.backend_url,
            model="zg-demo-1",
            input_price=INPUT_PRICE,
            output_price=OUTPUT_PRICE,
            signer_address=keys[2].address,
            counting_rule="letters",
        )
    )
    user = provider.users[0]
    before = await provider.state(user)
    status, _, raw = await provider.post(
        "/v1/proxy/letters/chat/completions",
        chat("three words here"),
        user.headers(provider.address, input_fee=3 * INPUT_PRICE),
    )
    assert status == 500, raw
    assert b'"unknown_counting_rule"' in raw
    assert b"'letters'" in raw
    assert b"Traceback" not in raw
    assert await provider.state(user) == before
    assert await provider.served_events() == []
