# SPDX-License-Identifier: Apache-2.0
"""What the SDK raises.

ZgError
 ├── ConfigError          missing or inconsistent settings (RPC URL, contract, wallet key)
 ├── AccountError         the account exists already, or its signing key cannot be recovered
 ├── NotFound             no such account or service on chain
 │    ├── NoAccount       (also an AccountError)
 │    └── NoService
 ├── GatewayRefused       the gateway refused a request the SDK itself sent (settle, lookups)
 ├── VerificationError    a receipt failed verification: the provider is no longer used
 └── ProviderStopped      a request to a provider that already failed verification

Errors from the chain (`zg_shared.chain.ChainError` and its subclasses) pass through as they are.
"""

from __future__ import annotations

from pathlib import Path


class ZgError(Exception):
    """Base class of every error the SDK raises itself."""


class ConfigError(ZgError):
    pass


class AccountError(ZgError):
    pass


class NotFound(ZgError):
    pass


class NoAccount(NotFound, AccountError):
    pass


class NoService(NotFound):
    pass


class GatewayRefused(ZgError):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"the gateway refused ({status} {code}): {message}")


class VerificationError(ZgError):
    """A provider's receipt did not verify. `evidence_path` is where the evidence was written
    (None when the client has no evidence directory; `export_evidence` writes it on demand)."""

    def __init__(self, provider: str, reason: str, evidence_path: Path | None = None) -> None:
        self.provider = provider
        self.reason = reason
        self.evidence_path = evidence_path
        where = f"; evidence written to {evidence_path}" if evidence_path else ""
        super().__init__(
            f"receipt from provider {provider} failed verification: {reason}; "
            f"no more requests will be sent to it{where}"
        )


class ProviderStopped(ZgError):
    def __init__(self, provider: str, cause: VerificationError) -> None:
        self.provider = provider
        self.cause = cause
        super().__init__(
            f"provider {provider} is stopped after a failed verification ({cause.reason})"
        )
