/**
 * The flags that hand the pre-deploy backup's id from hook to hook: what edms-ops refuses before it reaches
 * the engine (the stack file names a host where nothing listens, so any engine call would fail instead).
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { ensureCliBuilt } from "../../harness/build";
import { REPO_ROOT } from "../../harness/mocks";

describe("handed backup id: the flags edms-ops accepts and refuses", function () {
  this.timeout(60000);
  const projectDir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-handed-"));
  before(function () {
    this.timeout(120000);
    ensureCliBuilt();
    fs.writeFileSync(
      path.join(projectDir, "Pulumi.staging.yaml"),
      YAML.stringify({
        config: {
          "edms:environment": "staging",
          "edms:version": "2.0.0",
          "edms:namePrefix": "handed-stg",
          "docker:host": "tcp://127.0.0.1:9",
        },
      }),
    );
  });
  after(() => fs.rmSync(projectDir, { recursive: true, force: true }));

  const run = (args: string[]) =>
    spawnSync(
      "node",
      [
        path.join(REPO_ROOT, "ops/bin/edms-ops.js"),
        ...args,
        "--stack",
        "staging",
        "--project-dir",
        projectDir,
      ],
      { encoding: "utf8", env: { ...process.env, EDMS_SETTINGS_JSON: "", DOCKER_HOST: "" } },
    );

  const cases: [string[], RegExp][] = [
    [["drill"], /Name the backup to drill once/],
    [["drill", "latest", "--backup-id", "2026-11-25T14-00-00Z-pre-deploy"], /drill once/],
    [["drill", "--backup-id", "nothing to back up"], /is not a backup id/],
    [
      ["drill", "--backup-id", "2026-11-25T14-00-00Z-pre-deploy", "--target-version", "2.0.0"],
      /--target-version goes with `latest`/,
    ],
    [["record-deployment", "--backup-id", "../history.jsonl"], /is not a backup id/],
    [["backup", "--print-id", "--json"], /cannot be used with option '--json'/],
  ];
  for (const [args, message] of cases) {
    it(`${args.join(" ")}: exit 2, nothing run`, function () {
      const result = run(args);
      expect(result.status, result.stderr).to.equal(2);
      expect(result.stderr).to.match(message);
      expect(result.stderr).not.to.match(/127\.0\.0\.1:9|connect/);
    });
  }

  // Accepted: they go on to the engine, which does not answer here.
  const accepted = [
    ["drill", "--backup-id", "2026-11-25T14-00-00Z-pre-deploy", "--reason", "pre-deploy"],
    ["drill", "--backup-id", "", "--reason", "pre-deploy"],
    ["record-deployment", "--backup-id", ""],
    ["record-deployment", "--backup-id", "2026-11-25T14-00-00Z-pre-deploy"],
    ["backup", "--reason", "pre-deploy", "--target-version", "2.0.0", "--print-id"],
  ];
  for (const args of accepted) {
    it(`${args.map((a) => a || "''").join(" ")}: accepted, goes on to the engine`, function () {
      const result = run(args);
      expect(result.stderr).to.match(/No Docker engine answers at tcp:\/\/127\.0\.0\.1:9/);
      expect(result.status, result.stderr).to.equal(1);
    });
  }
});
