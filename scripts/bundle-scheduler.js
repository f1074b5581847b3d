#!/usr/bin/env node
// Bundles edms-ops into one CommonJS file for the scheduler image (images/scheduler/Dockerfile): the image
// then needs node and a docker CLI, no npm install and no node_modules on the Docker host. Run by
// `npm run build` after tsc (which type-checks; esbuild only strips the types).
"use strict";
const path = require("path");
const esbuild = require("esbuild");

const root = path.resolve(__dirname, "..");
const outfile = path.join(root, "build", "scheduler", "edms-ops.cjs");
esbuild.buildSync({
  entryPoints: [path.join(root, "ops", "main.ts")],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  outfile,
  // No source maps or timestamps: the same sources give the same bytes, so the image tag (a hash of them)
  // changes only when edms-ops does.
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});
