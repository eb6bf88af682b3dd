// SPDX-License-Identifier: Apache-2.0
// Print circomlibjs's reference Poseidon tables (C, M) as JSON with decimal strings.
import { createRequire } from "module";
const require = createRequire(import.meta.url);
const path = require.resolve("circomlibjs").replace(/build\/main\.cjs$/, "src/");
const { default: ref } = await import(path + "poseidon_constants.js");
const toDec = (o) => Array.isArray(o) ? o.map(toDec) : BigInt(o).toString();
process.stdout.write(JSON.stringify({ C: toDec(ref.C), M: toDec(ref.M) }));
