# SPDX-License-Identifier: Apache-2.0
"""Billing books a served event signed with the receipt key a rotation just replaced (a
gateway replica that had not read the change yet, an outbox that held its events), for
REPLACED_SIGNER_S after billing saw the change, and never after; on a real chain."""

from __future__ import annotations

from eth_account import Account as EthAccount
from opentelemetry.metrics import get_meter

from tests.integration.billing.conftest import Stack
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from zg_billing.evidence import REPLACED_SIGNER_S, SIGNER_REFRESH_S, Evidence
from zg_billing.metrics import BillingMetrics
from zg_gateway.receipts import ReceiptSigner
from zg_shared.chain import ServiceParams
from zg_shared.events import RequestServedV1


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def served_event(stack: Stack) -> RequestServedV1:
    await stack.send(stack.users[0])
    events: list[RequestServedV1] = []

    async def on_the_stream() -> bool:
        found = await stream_events(stack.js, {RequestServedV1.SUBJECT})
        events[:] = [RequestServedV1.model_validate(payload) for _, payload in found]
        return bool(events)

    await eventually(on_the_stream, what="the served event on the stream")
    [event] = events
    return event


async def test_the_replaced_receipt_key_is_taken_for_a_while_after_a_rotation(
    stack: Stack,
) -> None:
    old_key_event = await served_event(stack)  # signed by the gateway's registered key
    clock = Clock()
    evidence = Evidence(stack.serving, BillingMetrics(get_meter("test")), clock=clock)
    await evidence.read_signers()
    assert await evidence.served(old_key_event)

    # The provider rotates the service's receipt key on chain.
    [service] = await stack.serving.get_all_services()
    new_key = EthAccount.create()
    params = ServiceParams.model_validate(
        service.model_dump(include=set(ServiceParams.model_fields))
    )
    await stack.serving.add_or_update_service(
        params.model_copy(update={"signer_address": new_key.address})
    )
    new_key_event = ReceiptSigner(new_key).attest(
        old_key_event.model_copy(update={"event_id": "signed-by-the-new-key", "nonce": 2})
    )
    clock.now += SIGNER_REFRESH_S
    assert await evidence.served(new_key_event)  # billing reads the change

    # A replica that had not read the change yet signed with the key it replaced: taken.
    clock.now += REPLACED_SIGNER_S / 2
    assert await evidence.served(old_key_event)
    # Past the overlap it is refused, and a key never registered always was.
    clock.now += REPLACED_SIGNER_S / 2
    assert not await evidence.served(old_key_event)
    assert await evidence.served(new_key_event)
    stranger = ReceiptSigner(EthAccount.create()).attest(old_key_event)
    assert not await evidence.served(stranger)
