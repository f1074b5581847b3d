#!/usr/bin/env node
// The edms-ops CLI, run from its compiled JavaScript bundled into one file (build/cli/edms-ops.cjs, made by
// `npm run build`; `npm ci` runs it as the `prepare` script). Starting it loads neither a TypeScript compiler
// nor any @pulumi module, which matters for an operator tool that every deploy calls four or five times.
"use strict";
const path = require("path");

const root = path.resolve(__dirname, "..", "..");
const entry = path.join(root, "build", "cli", "edms-ops.cjs");
let cli;
try {
  cli = require(entry);
} catch (err) {
  if (err && err.code === "MODULE_NOT_FOUND" && String(err.message).includes(entry)) {
    process.stderr.write(
      `edms-ops: not built yet (${path.relative(root, entry)} is missing). Run \`npm run build\` in ${root} ` +
        "(`npm ci` does it too), then retry.\n",
    );
    process.exit(1);
  }
  throw err;
}
cli.main(process.argv);
