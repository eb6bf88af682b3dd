#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Test helper: signs settlement messages with circomlibjs, the reference implementation that
// the circuit (and zg_shared.crypto) must agree with.
//
// stdin:  {"key": "<private key, hex>", "messages": [{"user", "provider", "nonce", "fee"}, ...]}
//         (numbers as decimal strings or 0x-hex strings; addresses as 0x-hex)
// stdout: {"pub": ["<x>", "<y>"], "signatures": [{"m", "r8x", "r8y", "s"}, ...]} (decimal strings)
"use strict";

const { buildEddsa, buildPoseidon } = require("circomlibjs");

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const request = JSON.parse(await readStdin());
  const eddsa = await buildEddsa();
  const poseidon = await buildPoseidon();
  const F = eddsa.F;
  const prv = Buffer.from(request.key.replace(/^0x/, ""), "hex");
  const pub = eddsa.prv2pub(prv);
  const signatures = request.messages.map((msg) => {
    const m = poseidon([msg.user, msg.provider, msg.nonce, msg.fee].map((v) => BigInt(v)));
    const sig = eddsa.signPoseidon(prv, m);
    return {
      m: poseidon.F.toObject(m).toString(),
      r8x: F.toObject(sig.R8[0]).toString(),
      r8y: F.toObject(sig.R8[1]).toString(),
      s: sig.S.toString(),
    };
  });
  process.stdout.write(
    JSON.stringify({ pub: pub.map((p) => F.toObject(p).toString()), signatures }) + "\n",
  );
}

main().then(
  () => process.exit(0), // circomlibjs leaves wasm workers alive; exit explicitly.
  (err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  },
);
