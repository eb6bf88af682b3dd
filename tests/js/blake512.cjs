// SPDX-License-Identifier: Apache-2.0
// Read hex lines on stdin, print BLAKE-512 digests (hex) from the npm blake-hash package.
const createBlakeHash = require("blake-hash");
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.length > 0);
for (const line of lines) {
  const data = line === "-" ? Buffer.alloc(0) : Buffer.from(line, "hex");
  console.log(createBlakeHash("blake512").update(data).digest("hex"));
}
