import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { validateSettings } from "../../../components/config";
import { buildProgram } from "../../../ops/cli";
import { requireConfirm } from "../../../ops/lib/context";
import { OpsError } from "../../../ops/lib/errors";
import { loadSettings, targetDockerHost } from "../../../ops/lib/stack";
import { REPO_ROOT } from "../../support/program";

describe("edms-ops command tree", function () {
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
    ]);
  });

  it("gives every command a description and operator-facing commands an example", function () {
    for (const command of buildProgram().commands) {
      expect(command.description(), command.name()).to.have.length.above(20);
      const help = command.helpInformation();
      expect(help, command.name()).to.contain("Usage:");
    }
    const help = spawnSync(
      "node",
      [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), "restore", "--help"],
      { encoding: "utf8" },
    );
    expect(help.status).to.equal(0);
    expect(help.stdout).to.contain("--confirm production");
    expect(help.stdout).to.match(/Examples:\n {2}edms-ops restore/);
  });
});

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
    expect(() => loadSettings({ stack: "prod", projectDir: REPO_ROOT })).to.throw(
      OpsError,
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

  it("requires a stack", function () {
    const saved = process.env.EDMS_STACK;
    delete process.env.EDMS_STACK;
    try {
      expect(() => loadSettings({ projectDir: REPO_ROOT })).to.throw(
        /No stack given\. Pass `--stack <name>`/,
      );
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
      env: { ...process.env, PATH: "/nonexistent" },
    });

  it("says clearly that the Pulumi CLI is missing", function () {
    const result = run("up");
    expect(result.status).to.equal(127);
    expect(result.stderr).to.contain("the Pulumi CLI is not installed");
  });

  it("refuses destroy on production and unknown stacks before anything else", function () {
    expect(run("destroy", "--stack", "production").stderr).to.contain(
      "`destroy` is refused on production",
    );
    expect(run("up", "--stack", "nope").stderr).to.contain("no stack file Pulumi.nope.yaml");
  });
});
