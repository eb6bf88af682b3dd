# SPDX-License-Identifier: Apache-2.0
"""Code that two or more zgserve services use: chain access, crypto, event payloads, settings."""
