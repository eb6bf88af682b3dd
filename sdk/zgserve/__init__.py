# SPDX-License-Identifier: Apache-2.0
"""zgserve: the user broker (SDK) for the 0G Serving Network.

Async first (`ZgClient`), with a thin blocking wrapper (`SyncZgClient`). Errors are drawn
in `zgserve.errors`; a service's terms in `zgserve.terms`; evidence files and their offline
check in `zgserve.evidence`.
"""

from zgserve.client import RefundStatus, ServiceSession, ZgClient
from zgserve.config import ZgConfig, load_config
from zgserve.errors import (
    AccountError,
    CeilingExceeded,
    ConfigError,
    GatewayRefused,
    InsufficientFunds,
    NoAccount,
    NoService,
    NotFound,
    ProviderStopped,
    VerificationError,
    ZgError,
)
from zgserve.evidence import Evidence, Finding, verify_evidence
from zgserve.sync import SyncServiceSession, SyncZgClient
from zgserve.terms import Limits, ServiceTerms

__all__ = [
    "AccountError",
    "CeilingExceeded",
    "ConfigError",
    "Evidence",
    "Finding",
    "GatewayRefused",
    "InsufficientFunds",
    "Limits",
    "NoAccount",
    "NoService",
    "NotFound",
    "ProviderStopped",
    "RefundStatus",
    "ServiceSession",
    "ServiceTerms",
    "SyncServiceSession",
    "SyncZgClient",
    "VerificationError",
    "ZgClient",
    "ZgConfig",
    "ZgError",
    "load_config",
    "verify_evidence",
]
