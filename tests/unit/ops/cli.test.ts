import { expect } from "chai";
import { execFile, spawnSync } from "child_process";
import { Command } from "commander";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { validateSettings } from "../../../model/settings";
import { buildProgram } from "../../../ops/cli";
import { requireConfirm } from "../../../ops/core/context";
import { OpsError } from "../../../ops/core/errors";
import { loadSettings, targetDockerHost } from "../../../ops/core/stack";
import { ensureCliBuilt } from "../../harness/build";
import { REPO_ROOT } from "../../harness/mocks";

describe("edms-ops command tree", function () {
  before(function () {
    this.timeout(120000);
    ensureCliBuilt();
  });
  const expected = [
    "backup",
    "backups",
    "verify",
    "drill",
    "restore",
    "migrate",
    "bootstrap",
    "health",
    "status",
    "evidence",
    "record-deployment",
    "reset",
    "reset-app",
    "rollback",
    "scheduler",
    "alerts",
    "switch",
  ];

  it("wires every command of the design", function () {
    expect(buildProgram().commands.map((c) => c.name())).to.deep.equal(expected);
    const backups = buildProgram().commands.find((c) => c.name() === "backups");
    expect(backups?.commands.map((c) => c.name())).to.deep.equal([
      "list",
      "init",
      "export",
      "import",
      "import-legacy",
      "prune",
      "unlock",
      "forget",
    ]);
  });

  // Leaf commands as an operator types them (`backups list`, not `backups`), with their commander nodes.
  const leaves = (node: Command = buildProgram(), prefix: string[] = []): [string[], Command][] =>
    node.commands.flatMap((c) =>
      c.commands.length > 0
        ? leaves(c, [...prefix, c.name()])
        : [[[...prefix, c.name()], c] as [string[], Command]],
    );
  // Run only by `pulumi up`; their help says so instead of giving an example.
  const hookOnly = ["bootstrap", "record-deployment"];

  it("gives every command a description", function () {
    for (const [words, command] of leaves()) {
      expect(command.description(), words.join(" ")).to.have.length.above(20);
    }
  });

  it("`--help` of every operator command shows an example that names only its real flags and arguments", async function () {
    this.timeout(120000);
    const globalFlags = buildProgram().options.map((o) => o.long);
    const helps = await Promise.all(
      leaves().map(async ([words, command]) => ({
        words,
        command,
        ...(await runCli([...words, "--help"])),
      })),
    );
    for (const { words, command, status, stdout } of helps) {
      const name = words.join(" ");
      expect(status, name).to.equal(0);
      expect(stdout, name).to.contain(`Usage: edms-ops ${name} `);
      if (hookOnly.includes(name)) {
        expect(stdout, name).to.contain("Run by `pulumi up`");
        continue;
      }
      const examples = stdout.match(/\nExamples?:\n((?: {2}.+\n?)+)/)?.[1];
      expect(examples, `${name}: no Examples section`).to.be.a("string");
      for (const line of examples!.trim().split("\n")) {
        // The example's own edms-ops call (an example may set a variable first, chain, pipe or redirect).
        const call = line
          .slice(line.indexOf("edms-ops "))
          .split(/ && | \| | > /)[0]
          .trim()
          // Shell words: a quoted argument is one word.
          .match(/'[^']*'|"[^"]*"|\S+/g) as string[];
        expect(call.slice(1, 1 + words.length), line).to.deep.equal(words);
        const rest = call.slice(1 + words.length);
        const flags = command.options.map((o) => o.long);
        const positional: string[] = [];
        for (let i = 0; i < rest.length; i++) {
          if (!rest[i].startsWith("--")) {
            positional.push(rest[i]);
            continue;
          }
          const option = command.options.find((o) => o.long === rest[i]);
          expect([...flags, ...globalFlags], `${line}: unknown flag`).to.include(rest[i]);
          if (option?.required || option?.optional || rest[i] === "--stack") {
            i += 1; // its value
          }
        }
        expect(call, `${line}: names no stack`).to.include("--stack");
        const required = command.registeredArguments.filter((a) => a.required).length;
        expect(positional.length, `${line}: arguments`).to.be.at.least(required);
        expect(positional.length, `${line}: arguments`).to.be.at.most(
          command.registeredArguments.length,
        );
      }
    }
    const restore = helps.find((h) => h.words.join(" ") === "restore")!;
    expect(restore.stdout).to.contain("--confirm production");
  });
});

/** Runs the shipped CLI entry point as an operator would. */
function runCli(
  args: string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), ...args],
      { encoding: "utf8" },
      (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("stack loading", function () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-stack-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads and validates Pulumi.<stack>.yaml like the program does", function () {
    const settings = loadSettings({ stack: "production", projectDir: REPO_ROOT });
    expect(settings).to.deep.include({
      environment: "production",
      namePrefix: "edms",
      dockerHost: "ssh://deploy@edms.internal",
    });
    expect(settings.names.postgresVolume).to.equal("edms_postgres_data");
  });

  it("names the stack files it knows when the stack is unknown", function () {
    const described = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).to.be.instanceOf(OpsError);
        return (err as OpsError).describe();
      }
      throw new Error("expected an OpsError");
    };
    expect(described(() => loadSettings({ stack: "prod", projectDir: REPO_ROOT }))).to.match(
      /Unknown stack `prod`.*Known stacks: dev, production, staging\./,
    );
  });

  it("refuses a stack file with invalid YAML or bad values, saying nothing was changed", function () {
    fs.writeFileSync(path.join(dir, "Pulumi.broken.yaml"), "config: [unclosed");
    expect(() => loadSettings({ stack: "broken", projectDir: dir })).to.throw(/is not valid YAML/);
    fs.writeFileSync(
      path.join(dir, "Pulumi.bad.yaml"),
      "config:\n  edms:environment: production\n  edms:version: '1'\n  edms:dataGeneration: 2\n",
    );
    expect(() => loadSettings({ stack: "bad", projectDir: dir })).to.throw(
      /`edms:dataGeneration` is not allowed on production[\s\S]*nothing was changed/,
    );
  });

  it("takes a hook's handed settings only with the Docker names its prefix makes and the stack file's environment", function () {
    const saved = { json: process.env.EDMS_SETTINGS_JSON, stack: process.env.EDMS_STACK };
    const production = loadSettings({ stack: "production", projectDir: REPO_ROOT });
    const load = (settings: object) => {
      process.env.EDMS_STACK = "production";
      process.env.EDMS_SETTINGS_JSON = JSON.stringify(settings);
      return loadSettings({ stack: "production", projectDir: REPO_ROOT });
    };
    try {
      expect(load(production)).to.deep.equal(JSON.parse(JSON.stringify(production)));
      // A name the docker CLI would read as a flag, and one of another stack's volumes.
      for (const names of [
        { ...production.names, mediaVolume: "-f" },
        { ...production.names, postgresVolume: "other_postgres_data" },
      ]) {
        expect(() => load({ ...production, names }))
          .to.throw(OpsError, /names Docker resources other than the ones edms:namePrefix `edms`/)
          .with.property("fix")
          .that.matches(/^Run edms-ops without EDMS_SETTINGS_JSON/);
      }
      expect(() => load({ ...production, environment: "staging" })).to.throw(
        OpsError,
        /says environment staging, but .*Pulumi\.production\.yaml says production\. Nothing was changed\./,
      );
      expect(() => load({ ...production, namePrefix: "-f" })).to.throw(/must be a name prefix/);
      // Another stack's settings (whose file may say anything, or not be here) for this one.
      expect(() => load({ ...production, stack: "elsewhere", environment: "staging" })).to.throw(
        OpsError,
        /holds the settings of stack elsewhere, not production/,
      );
    } finally {
      for (const [name, value] of [
        ["EDMS_SETTINGS_JSON", saved.json],
        ["EDMS_STACK", saved.stack],
      ] as const) {
        if (value === undefined) {
          delete process.env[name];
        } else {
          process.env[name] = value;
        }
      }
    }
  });

  it("requires a stack", function () {
    const saved = process.env.EDMS_STACK;
    delete process.env.EDMS_STACK;
    try {
      expect(() => loadSettings({ projectDir: REPO_ROOT }))
        .to.throw(OpsError, /^No stack given\.$/)
        .with.property("fix")
        .that.matches(/^Pass `--stack <name>`/);
    } finally {
      if (saved !== undefined) {
        process.env.EDMS_STACK = saved;
      }
    }
  });

  it("refuses a DOCKER_HOST that points somewhere else than the stack's docker:host", function () {
    const saved = process.env.DOCKER_HOST;
    try {
      process.env.DOCKER_HOST = "ssh://deploy@staging.edms.internal";
      const production = loadSettings({ stack: "production", projectDir: REPO_ROOT });
      expect(() => targetDockerHost(production)).to.throw(
        /DOCKER_HOST=ssh:\/\/deploy@staging\.edms\.internal but stack `production` deploys to/,
      );
      process.env.DOCKER_HOST = "ssh://deploy@edms.internal";
      targetDockerHost(production);
      expect(process.env.DOCKER_HOST).to.equal("ssh://deploy@edms.internal");
    } finally {
      if (saved === undefined) {
        delete process.env.DOCKER_HOST;
      } else {
        process.env.DOCKER_HOST = saved;
      }
    }
  });

  it("confirmation must repeat the stack name", function () {
    const staging = validateSettings("staging", { environment: "staging", version: "1" });
    expect(() => requireConfirm(staging, undefined, "reset")).to.throw(
      /reset on stack `staging` needs `--confirm staging`\. Nothing was changed\./,
    );
    expect(() => requireConfirm(staging, "production", "reset")).to.throw(
      /--confirm `production` does not match the stack `staging`/,
    );
    expect(() => requireConfirm(staging, "staging", "reset")).not.to.throw();
  });
});

describe("npm run up/preview/destroy wrapper", function () {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(REPO_ROOT, "scripts/pulumi-local.js"), ...args], {
      encoding: "utf8",
      // No CLI at all, whatever node_modules holds: the pinned package would download one (npm test must not).
      env: { ...process.env, PATH: "/nonexistent", EDMS_PULUMI: "/nonexistent/pulumi" },
    });

  it("says clearly that no Pulumi CLI could be run, what was tried and how to install one, before building", function () {
    const result = run("up");
    expect(result.status).to.equal(127);
    expect(result.stderr).to.contain(
      "edms: The Pulumi CLI could not be run (spawnSync /nonexistent/pulumi ENOENT)",
    );
    expect(result.stderr).to.contain("Tried `/nonexistent/pulumi` (from $EDMS_PULUMI)");
    expect(result.stderr).to.contain("https://www.pulumi.com/docs/install/");
  });

  it("refuses destroy on production and unknown stacks before anything else", function () {
    expect(run("destroy", "--stack", "production").stderr).to.contain(
      "`destroy` is refused on production",
    );
    expect(run("up", "--stack", "nope").stderr).to.contain("no stack file Pulumi.nope.yaml");
  });

  it("reads the stack however the CLI would be told it, and refuses destroy by the stack file's environment", function () {
    for (const args of [
      ["--stack=production"],
      ["-s", "production"],
      ["-sproduction"],
      ["-s=production"],
      ["--yes", "-s", "production", "--skip-preview"],
    ]) {
      const result = run("destroy", ...args);
      expect(result.status, args.join(" ")).to.equal(2);
      expect(result.stderr, args.join(" ")).to.contain("`destroy` is refused on production");
    }
    // The CLI would take the last of two: refused whichever comes first.
    const twice = run("destroy", "--stack", "dev", "--stack", "production");
    expect([twice.status, twice.stderr]).to.deep.equal([
      2,
      "edms: more than one stack given (dev, production). Pass one `--stack <name>`. Nothing was changed.\n",
    ]);
    const cluster = run("destroy", "-ys", "production");
    expect(cluster.status).to.equal(2);
    expect(cluster.stderr).to.contain("cannot tell whether `-ys` names a stack");
    // Any name: a stack file whose environment is production.
    const file = path.join(REPO_ROOT, "Pulumi.e2e-prod-named-otherwise.yaml");
    fs.writeFileSync(file, "config:\n  edms:environment: production\n  edms:version: 1.0.0\n");
    try {
      const other = run("destroy", "--stack", "e2e-prod-named-otherwise");
      expect(other.status).to.equal(2);
      expect(other.stderr).to.contain(
        "`destroy` is refused on production (stack e2e-prod-named-otherwise)",
      );
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
