# SPDX-License-Identifier: Apache-2.0
"""Gateway settings that would let a request be served for free are refused at start."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from zg_gateway.config import GatewaySettings

REQUIRED: dict[str, Any] = {
    "environment": "test",
    "provider_address": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "receipt_private_key": "0x" + "11" * 32,
    "redis_url": "redis://127.0.0.1:6379/0",
    "nats_url": "nats://127.0.0.1:4222",
    "rpc_url": "http://127.0.0.1:8545",
    "serving_address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
}


def test_the_defaults_end_every_request_before_the_sweeper_voids_it() -> None:
    settings = GatewaySettings(**REQUIRED)
    assert settings.backend_timeout_s + settings.client_stall_s < settings.stale_after_s


def test_a_sweep_that_could_void_a_request_still_being_served_is_refused() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_STALE_AFTER_S"):
        GatewaySettings(**REQUIRED, backend_timeout_s=900.0, stale_after_s=900.0)
