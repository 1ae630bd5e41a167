// Compile a solc standard-JSON input (stdin) with the pinned solc-js; print the output (stdout).
// Imports are resolved from this folder first, then from node_modules (OpenZeppelin).
// Invoked by contracts/build.py; not meant to be run by hand.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;

function findImports(importPath) {
  for (const base of [here, path.join(here, "node_modules")]) {
    const candidate = path.resolve(base, importPath);
    if (!candidate.startsWith(base + path.sep)) continue;
    if (fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `import not found: ${importPath}` };
}

const input = fs.readFileSync(0, "utf8");
const output = JSON.parse(solc.compile(input, { import: findImports }));
process.stdout.write(JSON.stringify({ version: solc.version(), output }));
