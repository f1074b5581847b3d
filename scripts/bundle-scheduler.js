#!/usr/bin/env node
// Bundles edms-ops into single CommonJS files, run by `npm run build` after tsc (which type-checks; esbuild
// only strips the types):
// - build/scheduler/edms-ops.cjs, for the scheduler image (images/scheduler/Dockerfile): the image then needs
//   node and a docker CLI, no npm install and no node_modules on the Docker host;
// - build/cli/edms-ops.cjs, what ops/bin/edms-ops.js runs: one file starts in ~0.3 s of CPU where the tree
//   of ~200 compiled modules took ~0.5 s, and every deploy, hook and test starts edms-ops many times.
"use strict";
const fs = require("fs");
const path = require("path");
const esbuild = require("esbuild");

const root = path.resolve(__dirname, "..");
for (const [entry, outfile] of [
  ["main.ts", path.join(root, "build", "scheduler", "edms-ops.cjs")],
  ["cli.ts", path.join(root, "build", "cli", "edms-ops.cjs")],
]) {
  const [bundle] = esbuild.buildSync({
    entryPoints: [path.join(root, "ops", entry)],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    outfile,
    write: false,
    // No source maps or timestamps: the same sources give the same bytes, so the image tag (a hash of them)
    // changes only when edms-ops does.
    sourcemap: false,
    legalComments: "none",
    logLevel: "warning",
  }).outputFiles;
  // Left alone when unchanged, else replaced by a rename: an edms-ops starting meanwhile (a test file of
  // another lane, a hook) reads the old file or the new one whole, never one half written.
  let current;
  try {
    current = fs.readFileSync(outfile);
  } catch {
    current = undefined;
  }
  if (current && Buffer.compare(current, Buffer.from(bundle.contents)) === 0) {
    continue;
  }
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  const partial = `${outfile}.${process.pid}.partial`;
  fs.writeFileSync(partial, bundle.contents);
  fs.renameSync(partial, outfile);
}
