# SPDX-License-Identifier: Apache-2.0
"""Follows the Serving contract's events with confirmations and reorg handling, publishes them
and keeps Redis current. Built in the billing-and-indexer issue."""
