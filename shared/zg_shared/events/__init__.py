# SPDX-License-Identifier: Apache-2.0
"""Bus event payloads, one module per producing domain; see `base.Event` for the envelope."""

from zg_shared.events.base import Event, new_event_id, utc_now
from zg_shared.events.chain import (
    AccountUpdatedV1,
    ChainEvent,
    FeesSettledV1,
    RefundRequestedV1,
    ReorgDetectedV1,
    ServiceRemovedV1,
    ServiceUpdatedV1,
    SignerRotatedV1,
    chain_event_id,
)
from zg_shared.events.serving import RequestServedV1
from zg_shared.events.settlement import (
    ChunkProof,
    ProofFailedV1,
    ProofReadyV1,
    SettledChunk,
    SettlementConfirmedV1,
    SettlementFailedV1,
    SettlementRequestedV1,
    UnsettledRequest,
    UserBatch,
)

__all__ = [
    "AccountUpdatedV1",
    "ChainEvent",
    "ChunkProof",
    "Event",
    "FeesSettledV1",
    "ProofFailedV1",
    "ProofReadyV1",
    "RefundRequestedV1",
    "ReorgDetectedV1",
    "RequestServedV1",
    "ServiceRemovedV1",
    "ServiceUpdatedV1",
    "SettledChunk",
    "SettlementConfirmedV1",
    "SettlementFailedV1",
    "SettlementRequestedV1",
    "SignerRotatedV1",
    "UnsettledRequest",
    "UserBatch",
    "chain_event_id",
    "new_event_id",
    "utc_now",
]
