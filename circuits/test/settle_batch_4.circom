// SPDX-License-Identifier: Apache-2.0
pragma circom 2.1.0;

// Test harness: SettleBatch for N = 4 with the public inputs in ISettlementVerifier's order.
include "../settle_batch.circom";

component main {public [user, provider, initNonce, finalNonce, totalFee, signerX, signerY]} = SettleBatch(4);
