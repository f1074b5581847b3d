/**
 * Refusals that depend only on the stack must not depend on reaching the engine: production's stack file names
 * an unreachable host and DOCKER_HOST points elsewhere still, and each destructive command must refuse (exit 2,
 * naming production) instead of failing on the connection or the host mismatch.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { REPO_ROOT } from "../../harness/mocks";

describe("production refusals before any engine call", function () {
  this.timeout(60000);
  const projectDir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-refusals-"));
  fs.writeFileSync(
    path.join(projectDir, "Pulumi.production.yaml"),
    YAML.stringify({
      config: {
        "edms:environment": "production",
        "edms:version": "2.0.0",
        "edms:namePrefix": "refusal-prod",
        "edms:tlsUpstream": true,
        "edms:django": { allowedHosts: ["edms.example.com"] },
        // Nothing listens here: any engine call would fail with a connection error.
        "docker:host": "tcp://127.0.0.1:9",
      },
    }),
  );
  after(() => fs.rmSync(projectDir, { recursive: true, force: true }));

  const run = (args: string[], dockerHost?: string) =>
    spawnSync(
      "node",
      [
        path.join(REPO_ROOT, "ops/bin/edms-ops.js"),
        ...args,
        "--stack",
        "production",
        "--project-dir",
        projectDir,
      ],
      {
        encoding: "utf8",
        env: { ...process.env, EDMS_SETTINGS_JSON: "", DOCKER_HOST: dockerHost ?? "" },
      },
    );

  const cases: [string, string[], RegExp][] = [
    ["reset", ["reset"], /reset is refused on production/],
    [
      "reset with every flag",
      ["reset", "--confirm", "production", "--no-backup"],
      /reset is refused on production/,
    ],
    [
      "rollback without --confirm",
      ["rollback", "--previous"],
      /rollback on production .* needs `--confirm production`/,
    ],
    [
      "rollback without the backup",
      ["rollback", "--previous", "--confirm", "production", "--no-backup-first"],
      /rollback on production always takes a backup first/,
    ],
    [
      "restore without --confirm",
      ["restore", "2026-01-01T00-00-00Z-manual"],
      /restore on production .* needs `--confirm production`/,
    ],
    [
      "backups forget without --confirm",
      ["backups", "forget", "2026-01-01T00-00-00Z-manual"],
      /forgetting a backup on production .* needs `--confirm production`/,
    ],
    [
      "backups prune --restic-host without --offsite",
      ["backups", "prune", "--restic-host", "unix:///var/run/docker.sock"],
      /--restic-host goes with --offsite/,
    ],
    [
      "backups forget --offsite --restic-host that is no Docker address",
      [
        "backups",
        "forget",
        "2026-01-01T00-00-00Z-manual",
        "--offsite",
        "--confirm",
        "production",
        "--restic-host",
        "--rm",
      ],
      /--restic-host "--rm" is not a Docker host address/,
    ],
    [
      "backups prune --offsite --restic-host whose host part is an option",
      ["backups", "prune", "--offsite", "--restic-host", "ssh://-oProxyCommand=id"],
      /--restic-host "ssh:\/\/-oProxyCommand=id" is not a Docker host address/,
    ],
    [
      "reset-app without --confirm",
      ["reset-app", "documents"],
      /reset-app documents on stack `production` needs `--confirm production`/,
    ],
  ];
  for (const [what, args, message] of cases) {
    for (const dockerHost of [undefined, "unix:///var/run/elsewhere.sock"]) {
      it(`${what}: exit 2 with the refusal${dockerHost ? " (DOCKER_HOST names another host)" : ""}`, function () {
        const result = run(args, dockerHost);
        expect(result.status, result.stderr).to.equal(2);
        expect(result.stderr).to.match(message);
        expect(result.stderr).not.to.match(/Cannot connect|DOCKER_HOST=|not reachable|engine/i);
      });
    }
  }
});
