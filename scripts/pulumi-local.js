#!/usr/bin/env node
// `npm run up|preview|destroy [-- --stack S]`: runs the Pulumi CLI on a stack (default dev) with a local
// file backend under .pulumi-local/, so a newcomer needs no Pulumi account. Fails clearly when the CLI
// is missing instead of leaving npm to print "command not found".
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const [verb, ...rest] = process.argv.slice(2);
const stackFlag = rest.indexOf("--stack");
const stack = stackFlag >= 0 ? rest[stackFlag + 1] : "dev";
const passThrough =
  stackFlag >= 0 ? rest.filter((_, i) => i !== stackFlag && i !== stackFlag + 1) : rest;

if (!fs.existsSync(path.join(root, `Pulumi.${stack}.yaml`))) {
  console.error(`edms: no stack file Pulumi.${stack}.yaml. Stacks: dev, staging, production.`);
  process.exit(2);
}
if (verb === "destroy" && stack === "production") {
  console.error(
    "edms: `destroy` is refused on production: its data volumes are protected and retained. Nothing was changed.",
  );
  process.exit(2);
}
const probe = spawnSync("pulumi", ["version"], { encoding: "utf8" });
if (probe.error || probe.status !== 0) {
  console.error(
    [
      "edms: the Pulumi CLI is not installed (no `pulumi` on PATH).",
      "Install it from https://www.pulumi.com/docs/install/ and run this again.",
      "Without it you can still run the tests (`npm test`) and the operator CLI (`npx edms-ops --help`).",
    ].join("\n"),
  );
  process.exit(127);
}

const env = { ...process.env };
if (!env.PULUMI_BACKEND_URL) {
  // Local default: state in a folder of this checkout, encrypted with a passphrase (empty unless set).
  const stateDir = path.join(root, ".pulumi-local");
  fs.mkdirSync(stateDir, { recursive: true });
  env.PULUMI_BACKEND_URL = `file://${stateDir}`;
  env.PULUMI_CONFIG_PASSPHRASE = env.PULUMI_CONFIG_PASSPHRASE ?? "";
}
// The deploy hooks run the compiled edms-ops (build/) and the scheduler image carries its bundle
// (build/scheduler/): bring both up to date with the sources first, as `npm run build` does.
const tsc = require.resolve("typescript/bin/tsc");
const built = [
  [tsc, "-p", "tsconfig.build.json"],
  [path.join(root, "scripts", "bundle-scheduler.js")],
].reduce(
  (last, args) =>
    last.status !== 0 ? last : spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" }),
  { status: 0 },
);
if (built.status !== 0) {
  console.error("edms: building edms-ops (npm run build) failed; fix the errors above and retry.");
  process.exit(1);
}
const run = (args) => spawnSync("pulumi", args, { cwd: root, env, stdio: "inherit" }).status ?? 1;
if (run(["stack", "select", stack]) !== 0 && run(["stack", "init", stack]) !== 0) {
  process.exit(1);
}
const args = [verb, "--stack", stack, ...passThrough];
process.exit(run(args));
