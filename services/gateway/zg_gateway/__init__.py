# SPDX-License-Identifier: Apache-2.0
"""The provider's HTTP endpoint: verifies signed requests, checks balances atomically, proxies
to the AI backend, meters usage, signs receipts and publishes served-request events. Built in
the gateway issue."""
