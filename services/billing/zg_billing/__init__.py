# SPDX-License-Identifier: Apache-2.0
"""Consumes served-request events, keeps unsettled fees per account, decides when to settle,
and submits proof-backed settlement transactions. Built in the billing issue."""
