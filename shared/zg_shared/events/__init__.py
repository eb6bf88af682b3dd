"""Bus event payloads, one module per producing domain; see `base.Event` for the envelope."""

from zg_shared.events.base import Event, new_event_id, utc_now
from zg_shared.events.serving import RequestServedV1
from zg_shared.events.settlement import (
    ChunkProof,
    ProofFailedV1,
    ProofReadyV1,
    SettlementRequestedV1,
    UserBatch,
)

__all__ = [
    "ChunkProof",
    "Event",
    "ProofFailedV1",
    "ProofReadyV1",
    "RequestServedV1",
    "SettlementRequestedV1",
    "UserBatch",
    "new_event_id",
    "utc_now",
]
