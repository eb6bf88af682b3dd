// SPDX-License-Identifier: Apache-2.0
pragma circom 2.1.0;

// Compile with the repository's node_modules on the library path:
//   circom2 circuits/test/settle_batch_4.circom --O2 --r1cs --wasm -l node_modules
include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";
include "circomlib/circuits/eddsaposeidon.circom";
include "circomlib/circuits/poseidon.circom";

/*
    SettleBatch(N): one settlement chunk of up to N signed requests of one user to one provider.

    Public inputs (snarkjs orders public signals by declaration; the template has no outputs):
        user, provider, initNonce, finalNonce, totalFee, signerX, signerY
    This is the order Serving.settleFees passes to ISettlementVerifier.verifyProof.

    Private inputs, per entry i < N:
        enabled[i]           1 for a real request, 0 for padding
        nonce[i], fee[i]     the request's nonce (u64) and the fee it authorises (< 2^128)
        R8x[i], R8y[i], S[i] the user's EdDSA-Poseidon signature over M[i]

    Statement:
        (1) enabled[i] in {0, 1}; enabled[0] == 1; enabled[i] <= enabled[i-1]
            (the real entries are a non-empty prefix, so the chunk's last real entry is
            the last i with enabled[i] == 1)
        (2) for each enabled i: nonce[i] < 2^64 and fee[i] < 2^128
        (3) for each enabled i > 0: nonce[i-1] < nonce[i]
        (4) for each enabled i: EdDSAPoseidonVerify((signerX, signerY), (R8x[i], R8y[i], S[i]), M[i])
            with M[i] = Poseidon(user, provider, nonce[i], fee[i])
        (5) initNonce == nonce[0]
        (6) finalNonce == nonce[last], last = the last enabled index
        (7) totalFee == sum over i of enabled[i] * fee[i]

    Padding entries count for nothing. Their values are free, save that the circomlib
    verifier still runs on them with enabled = 0 and needs S < 2^253 and an R8 that does
    not divide by zero in BabyAdd: pad with nonce = fee = S = R8x = 0 and R8y = 1.
*/
template SettleBatch(N) {
    assert(N >= 1);

    signal input user;
    signal input provider;
    signal input initNonce;
    signal input finalNonce;
    signal input totalFee;
    signal input signerX;
    signal input signerY;

    signal input enabled[N];
    signal input nonce[N];
    signal input fee[N];
    signal input R8x[N];
    signal input R8y[N];
    signal input S[N];

    // (1) enabled is boolean and a non-empty prefix.
    enabled[0] === 1;
    for (var i = 0; i < N; i++) {
        enabled[i] * (enabled[i] - 1) === 0;
    }
    for (var i = 1; i < N; i++) {
        // With booleans, enabled[i] * (1 - enabled[i-1]) == 0 is enabled[i] <= enabled[i-1].
        enabled[i] * (1 - enabled[i - 1]) === 0;
    }

    // (2) Range checks on the masked values, so that padding needs no particular nonce or fee.
    // For an enabled entry the masked value is the value itself.
    signal nonceOn[N];
    signal feeOn[N];
    component nonceBits[N];
    component feeBits[N];
    for (var i = 0; i < N; i++) {
        nonceOn[i] <== enabled[i] * nonce[i];
        nonceBits[i] = Num2Bits(64);
        nonceBits[i].in <== nonceOn[i];

        feeOn[i] <== enabled[i] * fee[i];
        feeBits[i] = Num2Bits(128);
        feeBits[i].in <== feeOn[i];
    }

    // (3) Strictly increasing nonces. LessThan(64) is sound because both sides are < 2^64 by
    // (2); it runs on masked values so that it is satisfiable for padding too, and its result
    // only binds where entry i is enabled (which, by (1), implies entry i-1 is).
    component increasing[N];
    for (var i = 1; i < N; i++) {
        increasing[i] = LessThan(64);
        increasing[i].in[0] <== nonceOn[i - 1];
        increasing[i].in[1] <== nonceOn[i];
        enabled[i] * (1 - increasing[i].out) === 0;
    }

    // (4) Each enabled entry is signed by the account's signer over M[i]. user and provider
    // are public inputs, so every signature in the chunk names the same user and provider.
    component message[N];
    component signature[N];
    for (var i = 0; i < N; i++) {
        message[i] = Poseidon(4);
        message[i].inputs[0] <== user;
        message[i].inputs[1] <== provider;
        message[i].inputs[2] <== nonce[i];
        message[i].inputs[3] <== fee[i];

        signature[i] = EdDSAPoseidonVerifier();
        signature[i].enabled <== enabled[i];
        signature[i].Ax <== signerX;
        signature[i].Ay <== signerY;
        signature[i].S <== S[i];
        signature[i].R8x <== R8x[i];
        signature[i].R8y <== R8y[i];
        signature[i].M <== message[i].out;
    }

    // (5) The chunk starts at its first entry, which (1) makes a real one.
    initNonce === nonce[0];

    // (6) isLast[i] = enabled[i] - enabled[i+1] is 1 exactly at the last enabled entry (by (1)),
    // so the sum below selects its nonce.
    signal lastNonce[N];
    for (var i = 0; i < N; i++) {
        var next = i + 1 < N ? enabled[i + 1] : 0;
        lastNonce[i] <== (enabled[i] - next) * nonce[i];
    }
    var selected = 0;
    for (var i = 0; i < N; i++) {
        selected += lastNonce[i];
    }
    finalNonce === selected;

    // (7) The total is what the enabled entries authorise; N * 2^128 cannot wrap the field.
    var sum = 0;
    for (var i = 0; i < N; i++) {
        sum += feeOn[i];
    }
    totalFee === sum;
}
