# SPDX-License-Identifier: Apache-2.0
"""The SDK's public names: what `from zgserve import *` gives, and nothing private."""

from __future__ import annotations

import zgserve


def test_public_names() -> None:
    assert sorted(zgserve.__all__) == sorted(
        [
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
    )
    for name in zgserve.__all__:
        assert getattr(zgserve, name) is not None


def test_errors_form_one_hierarchy() -> None:
    for name in (
        "AccountError",
        "CeilingExceeded",
        "ConfigError",
        "GatewayRefused",
        "InsufficientFunds",
        "NotFound",
        "ProviderStopped",
    ):
        assert issubclass(getattr(zgserve, name), zgserve.ZgError)
    assert issubclass(zgserve.NoAccount, zgserve.AccountError)
    assert issubclass(zgserve.VerificationError, zgserve.ZgError)
