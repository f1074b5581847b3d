/** Which Pulumi CLI `npm run up|preview|destroy` and `edms-ops rollback` run, and how. */
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import {
  destroyNotice,
  cachedPulumiBinary,
  cliUnavailable,
  passphraseProblem,
  findPulumiCli,
  policyPackArgs,
  PULUMI_INSTALL_URL,
  pulumiEnv,
  stackChoice,
} from "../../../model/pulumiCli";
import { REPO_ROOT } from "../../harness/mocks";

/** A package root like this repository's after `npm ci`: the `pulumi` package and its bin link. */
function fixtureRoot(opts: { bin: boolean; version?: string }): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "edms-pulumi-cli-"));
  const pkg = path.join(root, "node_modules", "pulumi");
  fs.mkdirSync(path.join(root, "node_modules", ".bin"), { recursive: true });
  if (opts.version) {
    fs.mkdirSync(pkg, { recursive: true });
    fs.writeFileSync(path.join(pkg, "package.json"), JSON.stringify({ version: opts.version }));
    fs.writeFileSync(path.join(pkg, "run.js"), "#!/usr/bin/env node\n", { mode: 0o755 });
  }
  if (opts.bin) {
    fs.symlinkSync(
      path.join("..", "pulumi", "run.js"),
      path.join(root, "node_modules/.bin/pulumi"),
    );
  }
  return root;
}

describe("the Pulumi CLI this project runs (model/pulumiCli.ts)", function () {
  const env = { PATH: "/usr/bin", PULUMI_HOME: "/tmp/ph" };

  it("is the pinned `pulumi` package's bin first, with the version and the cache it downloads into", function () {
    const root = fixtureRoot({ bin: true, version: "3.265.0" });
    expect(findPulumiCli(root, env)).to.deep.equal({
      command: path.join(root, "node_modules/.bin/pulumi"),
      source: "package",
      version: "3.265.0",
      cachedBinary: "/tmp/ph/versions/3.265.0/bin/pulumi",
    });
  });

  it("is `pulumi` on PATH when the package is not installed (or its bin link is missing)", function () {
    for (const root of [
      fixtureRoot({ bin: false }),
      fixtureRoot({ bin: false, version: "3.265.0" }),
    ]) {
      expect(findPulumiCli(root, env)).to.deep.equal({ command: "pulumi", source: "path" });
    }
  });

  it("is $EDMS_PULUMI above all (the e2e tests' stand-in), even with the package installed", function () {
    const root = fixtureRoot({ bin: true, version: "3.265.0" });
    const stand = path.join(REPO_ROOT, "tests/harness/bin/pulumi");
    expect(findPulumiCli(root, { ...env, EDMS_PULUMI: stand })).to.deep.equal({
      command: stand,
      source: "override",
    });
  });

  it("caches where the package's lib/cache.js does: $PULUMI_HOME, else ~/.pulumi", function () {
    expect(cachedPulumiBinary("3.265.0", { PULUMI_HOME: "/x" })).to.equal(
      "/x/versions/3.265.0/bin/pulumi",
    );
    expect(cachedPulumiBinary("3.265.0", {})).to.equal(
      path.join(os.homedir(), ".pulumi/versions/3.265.0/bin/pulumi"),
    );
  });

  it("drops PULUMI_VERSION for the package, which would otherwise install that version instead of the pinned one", function () {
    const root = fixtureRoot({ bin: true, version: "3.265.0" });
    const cli = findPulumiCli(root, env);
    expect(pulumiEnv(cli, { ...env, PULUMI_VERSION: "3.100.0" })).to.deep.equal(env);
    const onPath = findPulumiCli(fixtureRoot({ bin: false }), env);
    expect(pulumiEnv(onPath, { ...env, PULUMI_VERSION: "x" })).to.include({ PULUMI_VERSION: "x" });
  });

  it("passes the policy pack to up and preview, not to destroy or stack commands", function () {
    expect(policyPackArgs("up")).to.deep.equal(["--policy-pack", "policy"]);
    expect(policyPackArgs("preview")).to.deep.equal(["--policy-pack", "policy"]);
    expect(policyPackArgs("destroy")).to.deep.equal([]);
    expect(policyPackArgs("stack")).to.deep.equal([]);
  });

  it("says, when the download failed, what was tried, where it caches, and how to install by hand", function () {
    const root = fixtureRoot({ bin: true, version: "3.265.0" });
    const text = cliUnavailable(findPulumiCli(root, env), "exit 1").join("\n");
    expect(text).to.contain("The Pulumi CLI v3.265.0 could not be downloaded (exit 1");
    expect(text).to.contain("the `pulumi` npm package 3.265.0");
    expect(text).to.contain("/tmp/ph/versions/3.265.0");
    expect(text).to.contain(PULUMI_INSTALL_URL);
    expect(text).to.contain(
      "--version 3.265.0 --install-root /tmp/ph/versions/3.265.0 --no-edit-path",
    );
    expect(text).to.contain("PULUMI_HOME");
    expect(text).to.contain('EDMS_PULUMI="$(command -v pulumi)"');
  });

  it("says a CLI that did not run is not a failed download", function () {
    const text = cliUnavailable(
      findPulumiCli(fixtureRoot({ bin: false }), env),
      "spawn pulumi ENOENT",
    );
    expect(text[0]).to.equal("The Pulumi CLI could not be run (spawn pulumi ENOENT).");
    expect(text.join("\n")).to.contain("`pulumi` on PATH").and.contain(PULUMI_INSTALL_URL);
  });

  it("is pinned exactly: package.json's devDependency equals the lockfile's", function () {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
    const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package-lock.json"), "utf8"));
    expect(pkg.devDependencies.pulumi).to.match(/^\d+\.\d+\.\d+$/);
    expect(lock.packages["node_modules/pulumi"].version).to.equal(pkg.devDependencies.pulumi);
  });

  it("is found by that resolver in both places that run pulumi, never by a bare `pulumi` spawn", function () {
    for (const file of ["scripts/pulumi-local.js", "ops/engine/pulumi.ts"]) {
      const text = fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
      expect(text, file).to.match(/findPulumiCli\(/);
      expect(text, file).to.match(/policyPackArgs\(/);
      expect(text, file).not.to.match(/spawn(Sync)?\(\s*"pulumi"/);
    }
  });

  it("refuses a staging or production state encrypted with an empty passphrase; dev may use one", function () {
    expect(passphraseProblem("dev", {})).to.equal(undefined);
    expect(passphraseProblem("staging", { PULUMI_CONFIG_PASSPHRASE: "s3cret" })).to.equal(
      undefined,
    );
    expect(passphraseProblem("production", { PULUMI_CONFIG_PASSPHRASE_FILE: "/run/p" })).to.equal(
      undefined,
    );
    for (const env of [{}, { PULUMI_CONFIG_PASSPHRASE: "" }]) {
      expect(passphraseProblem("production", env)).to.match(
        /production stack's secrets would be encrypted with an empty passphrase\. Nothing was changed\.\nSet PULUMI_CONFIG_PASSPHRASE/,
      );
    }
    // `npm run up -- --stack production` with none set stops before any CLI or build runs.
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    const { PULUMI_BACKEND_URL, ...inherited } = process.env;
    const env = { ...inherited, PULUMI_CONFIG_PASSPHRASE: "" };
    const run = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, "scripts/pulumi-local.js"), "preview", "--stack", "production"],
      { encoding: "utf8", env },
    );
    expect(run.status).to.equal(2);
    expect(run.stderr).to.contain("empty passphrase");
  });
});

describe("stackChoice: the stack `npm run up|preview|destroy -- …` names", function () {
  it("takes every form the CLI takes and passes the rest on unchanged", function () {
    expect(stackChoice([])).to.deep.equal({ stack: "dev", passThrough: [] });
    for (const args of [
      ["--stack", "staging"],
      ["--stack=staging"],
      ["-s", "staging"],
      ["-s=staging"],
      ["-sstaging"],
    ]) {
      expect(stackChoice(["--yes", ...args, "--diff"]), args.join(" ")).to.deep.equal({
        stack: "staging",
        passThrough: ["--yes", "--diff"],
      });
    }
    // After `--`, nothing is a flag of ours.
    expect(stackChoice(["--", "-s", "x"])).to.deep.equal({
      stack: "dev",
      passThrough: ["--", "-s", "x"],
    });
    expect(stackChoice(["-y", "--skip-preview"])).to.deep.equal({
      stack: "dev",
      passThrough: ["-y", "--skip-preview"],
    });
  });

  it("refuses two stacks, a flag with no name, and -s inside a cluster of short flags", function () {
    expect(stackChoice(["-s", "dev", "--stack=production"])).to.have.property(
      "problem",
      "edms: more than one stack given (dev, production). Pass one `--stack <name>`. Nothing was changed.",
    );
    expect(stackChoice(["--stack"])).to.have.property(
      "problem",
      "edms: --stack needs a stack name, e.g. `--stack staging`.",
    );
    expect(stackChoice(["-fs", "production"]))
      .to.have.property("problem")
      .that.contains("cannot tell whether `-fs` names a stack");
  });
});

describe("destroyNotice: what `npm run destroy` says it leaves alone", function () {
  it("names an external database as left as it is, from the stack file's value (object or JSON text)", function () {
    const raw = { database: { host: "db.example.com", port: 6432, user: "a" } };
    expect(destroyNotice("staging", raw)).to.match(
      /database is external .*db\.example\.com:6432.*leaves it, its data and its roles/,
    );
    expect(destroyNotice("s", { database: JSON.stringify({ host: "h" }) })).to.contain("h:5432");
    expect(destroyNotice("dev", {})).to.equal(undefined);
    expect(destroyNotice("dev", { database: "not json" })).to.equal(undefined);
  });

  it("names a media bucket's prefix as left as it is, beside the database", function () {
    const media = { backend: "s3", bucket: "docs", prefix: "edms-staging" };
    expect(destroyNotice("staging", { media })).to.match(
      /media are in a bucket \(edms:media, docs\/edms-staging\): destroy leaves every object/,
    );
    const both = destroyNotice("staging", { media, database: { host: "h" } })!.split("\n");
    expect(both).to.have.length(2);
  });
});
