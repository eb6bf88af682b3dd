# SPDX-License-Identifier: Apache-2.0
"""Turns a batch of signed requests into a Groth16 proof of the SettleBatch circuit (CPU
backend everywhere, GPU where present). Built in the signatures-and-proofs issue."""
