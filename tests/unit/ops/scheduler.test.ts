/**
 * `edms-ops scheduler` as an operator meets it without an engine: the next due times from the stack file, and
 * a refusal naming the key when the schedule is off (the engine named here is unreachable: any call to it
 * would fail differently).
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { ensureCliBuilt } from "../../harness/build";
import { REPO_ROOT } from "../../harness/mocks";

describe("edms-ops scheduler without an engine", function () {
  this.timeout(60000);
  const projectDir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-scheduler-"));
  const stackFile = (stack: string, environment: string, backup: object) =>
    fs.writeFileSync(
      path.join(projectDir, `Pulumi.${stack}.yaml`),
      YAML.stringify({
        config: {
          "edms:environment": environment,
          "edms:version": "2.0.0",
          "edms:backup": backup,
          // Production serves HTTPS (model/config/https.ts); the scheduler does not care how.
          ...(environment === "production"
            ? { "edms:tlsUpstream": true, "edms:django": { allowedHosts: ["edms.example.com"] } }
            : {}),
          "docker:host": "tcp://127.0.0.1:9",
        },
      }),
    );
  before(() => {
    ensureCliBuilt();
    stackFile("production", "production", {});
    stackFile("dev", "dev", {});
    stackFile("quarter", "staging", { schedule: "0 15,45 * * * *" });
  });
  after(() => fs.rmSync(projectDir, { recursive: true, force: true }));

  const run = (args: string[]) =>
    spawnSync(
      "node",
      [
        path.join(REPO_ROOT, "ops/bin/edms-ops.js"),
        "scheduler",
        ...args,
        "--project-dir",
        projectDir,
      ],
      { encoding: "utf8", env: { ...process.env, EDMS_SETTINGS_JSON: "", DOCKER_HOST: "" } },
    );

  it("--next prints the next due times in UTC: production's default every 6 hours", function () {
    const result = run(["--next", "3", "--stack", "production"]);
    expect(result.status, result.stderr).to.equal(0);
    const times = result.stdout.trim().split("\n").map(Date.parse);
    expect(times).to.have.length(3);
    expect(times.every((t) => new Date(t).getUTCHours() % 6 === 0)).to.equal(true);
    expect(times[1] - times[0]).to.equal(6 * 3600_000);
    expect(times[0]).to.be.above(Date.now());
  });

  it("--next reads a 6-field schedule with seconds", function () {
    const result = run(["--next", "2", "--stack", "quarter"]);
    expect(result.status, result.stderr).to.equal(0);
    const [a, b] = result.stdout.trim().split("\n");
    expect(a).to.match(/:(15|45):00\.000Z$/);
    expect(Date.parse(b) - Date.parse(a)).to.equal(30 * 60_000);
  });

  it("refuses to run on a stack whose schedule is off, naming the key, before any engine call", function () {
    const result = run(["--stack", "dev"]);
    expect(result.status).to.equal(2);
    expect(result.stderr).to.match(
      /`edms:backup.schedule` is off for stack dev: there is nothing to schedule\. Set a cron expression/,
    );
    expect(run(["--next", "0", "--stack", "dev"]).stderr).to.match(/--next takes a count 1–1000/);
  });
});
