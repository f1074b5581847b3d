#!/usr/bin/env node
// `npm run up|preview|destroy [-- --stack S]`: runs the Pulumi CLI on a stack (default dev) with a local
// file backend under .pulumi-local/, so a newcomer needs no Pulumi account. The CLI is the one the `pulumi`
// npm package (a devDependency pinned exactly) downloads on first use, so the lockfile pins its version; the
// choice is made by build/model/pulumiCli.js, the same code `edms-ops rollback` uses. When no CLI can be run
// it says what it tried and how to install one by hand, instead of leaving npm to print "command not found".
// `up` and `preview` pass the policy pack, as the workflows do.
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const [verb, ...rest] = process.argv.slice(2);
// The resolver and the stack-file reader are TypeScript shared with edms-ops (model/): transpiled here, as
// the e2e stand-in does, so a missing CLI is reported before the build rather than after it.
require("ts-node").register({ transpileOnly: true, project: path.join(root, "tsconfig.json") });
const cliModule = require(path.join(root, "model", "pulumiCli"));
const { readStackConfig, edmsConfig } = require(path.join(root, "model", "stackFile"));
const choice = cliModule.stackChoice(rest);
if (choice.problem) {
  console.error(choice.problem);
  process.exit(2);
}
const { stack, passThrough } = choice;

if (!/^[A-Za-z0-9_.-]+$/.test(stack) || !fs.existsSync(path.join(root, `Pulumi.${stack}.yaml`))) {
  console.error(`edms: no stack file Pulumi.${stack}.yaml. Stacks: dev, staging, production.`);
  process.exit(2);
}
// The stack file decides, not the name: a stack called anything whose environment is production.
const environment = edmsConfig(readStackConfig(root, stack)).raw.environment;
if (verb === "destroy" && (stack === "production" || environment === "production")) {
  console.error(
    `edms: \`destroy\` is refused on production (stack ${stack}): its data volumes are protected and retained. Nothing was changed.`,
  );
  process.exit(2);
}
if (verb === "destroy") {
  const notice = cliModule.destroyNotice(stack, edmsConfig(readStackConfig(root, stack)).raw);
  if (notice) {
    console.error(notice);
  }
}
const env = { ...process.env };
if (!env.PULUMI_BACKEND_URL) {
  // Local default: state in a folder of this checkout, encrypted with a passphrase (empty unless set).
  const stateDir = path.join(root, ".pulumi-local");
  fs.mkdirSync(stateDir, { recursive: true });
  env.PULUMI_BACKEND_URL = `file://${stateDir}`;
  env.PULUMI_CONFIG_PASSPHRASE = env.PULUMI_CONFIG_PASSPHRASE ?? "";
}
// A local backend's secrets are only as safe as its passphrase: empty is for dev alone.
if (env.PULUMI_BACKEND_URL.startsWith("file://")) {
  const problem = cliModule.passphraseProblem(environment, env);
  if (problem) {
    console.error(problem);
    process.exit(2);
  }
}
const cli = cliModule.findPulumiCli(root, env);
const cliEnv = cliModule.pulumiEnv(cli, env);
requireCli();
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
if (cliModule.policyPackArgs(verb).length > 0) {
  installPolicyPack();
}
const run = (args) =>
  spawnSync(cli.command, args, { cwd: root, env: cliEnv, stdio: "inherit" }).status ?? 1;
if (run(["stack", "select", stack]) !== 0 && run(["stack", "init", stack]) !== 0) {
  process.exit(1);
}
const args = [verb, "--stack", stack, ...cliModule.policyPackArgs(verb), ...passThrough];
process.exit(run(args));

/**
 * `pulumi version` once, with its stderr shown: the package's first run downloads the CLI here ("Downloading
 * pulumi v…"). A failed download (run.js prints `pulumi: <error>` and exits 1) is told apart from a broken CLI
 * by the cached binary still missing afterwards (cliUnavailable).
 */
function requireCli() {
  const probe = spawnSync(cli.command, ["version"], {
    cwd: root,
    env: cliEnv,
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (!probe.error && probe.status === 0) {
    return;
  }
  const failure = probe.error ? probe.error.message : `exit ${probe.status}`;
  const [first, ...rest] = cliModule.cliUnavailable(cli, failure);
  console.error(
    [
      `edms: ${first}`,
      ...rest,
      "Then run this again. Without the CLI you can still run the tests (`npm test`) and the operator CLI (`npx edms-ops --help`).",
    ].join("\n"),
  );
  process.exit(127);
}

/** The policy pack has its own package.json (the Pulumi CLI runs it from policy/): install it once. */
function installPolicyPack() {
  if (fs.existsSync(path.join(root, cliModule.POLICY_PACK_DIR, "node_modules"))) {
    return;
  }
  const npmArgs = [
    "ci",
    "--prefix",
    cliModule.POLICY_PACK_DIR,
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
  ];
  // Under `npm run`, npm_execpath is the npm that started us; otherwise the one on PATH.
  const npm = process.env.npm_execpath
    ? spawnSync(process.execPath, [process.env.npm_execpath, ...npmArgs], {
        cwd: root,
        stdio: "inherit",
      })
    : spawnSync("npm", npmArgs, { cwd: root, stdio: "inherit" });
  if (npm.error || npm.status !== 0) {
    console.error(
      `edms: installing the policy pack's dependencies (npm ${npmArgs.join(" ")}) failed; fix the error above and retry.`,
    );
    process.exit(1);
  }
}
