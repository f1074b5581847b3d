#!/usr/bin/env node
// The edms-ops CLI. Runs the TypeScript sources through ts-node (transpile only), the same toolchain
// `pulumi up` uses for this program, so there is no build step to forget.
"use strict";
const path = require("path");
require("ts-node").register({
  transpileOnly: true,
  project: path.join(__dirname, "..", "..", "tsconfig.json"),
});
require("../cli").main(process.argv);
