// SPDX-License-Identifier: Apache-2.0
// Reference vectors from circomlibjs for the Python tests.
// stdin: JSON {sign: [{prv: hex, msg: dec}], poseidon: [[dec, ...]],
//              verify: [{msg, r8: [x, y], s, a: [x, y]}], unpack: [hex]}
// stdout: JSON with the same keys; every number as a decimal string.
import { readFileSync } from "fs";
import { buildEddsa, buildPoseidon, buildPoseidonReference } from "circomlibjs";

const req = JSON.parse(readFileSync(0, "utf8"));
const eddsa = await buildEddsa();
const poseidon = await buildPoseidon();
const poseidonRef = await buildPoseidonReference();
const F = eddsa.F;
const babyJub = eddsa.babyJub;
const dec = (x) => F.toObject(x).toString();
const hex = (u8) => Buffer.from(u8).toString("hex");

const out = { sign: [], poseidon: [], poseidonReference: [], verify: [], unpack: [] };
for (const { prv, msg } of req.sign ?? []) {
  const key = Buffer.from(prv, "hex");
  const A = eddsa.prv2pub(key);
  const m = F.e(BigInt(msg));
  const sig = eddsa.signPoseidon(key, m);
  out.sign.push({
    a: [dec(A[0]), dec(A[1])],
    aPacked: hex(babyJub.packPoint(A)),
    r8: [dec(sig.R8[0]), dec(sig.R8[1])],
    r8Packed: hex(babyJub.packPoint(sig.R8)),
    s: sig.S.toString(),
    valid: eddsa.verifyPoseidon(m, sig, A),
  });
}
for (const inputs of req.poseidon ?? []) {
  const xs = inputs.map((v) => BigInt(v));
  out.poseidon.push(dec(poseidon(xs)));
  out.poseidonReference.push(dec(poseidonRef(xs)));
}
for (const { msg, r8, s, a } of req.verify ?? []) {
  const sig = { R8: [F.e(BigInt(r8[0])), F.e(BigInt(r8[1]))], S: BigInt(s) };
  out.verify.push(eddsa.verifyPoseidon(F.e(BigInt(msg)), sig, [F.e(BigInt(a[0])), F.e(BigInt(a[1]))]));
}
for (const packed of req.unpack ?? []) {
  const p = babyJub.unpackPoint(Buffer.from(packed, "hex"));
  out.unpack.push(p === null ? null : [dec(p[0]), dec(p[1])]);
}
// Exit once the pipe has taken everything (ffjavascript's workers would keep node alive).
process.stdout.write(JSON.stringify(out), () => process.exit(0));
