import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { ProgramRun, RecordedResource, runProgram, useStackRuns } from "../../harness/mocks";

const MOCK_SECRET = /mock-secret-/;

describe("the program's scheduled backups", function () {
  const runs = useStackRuns();

  describe("scheduled backups (edms:backup.schedule)", function () {
    const SCHEDULER_IMAGE = "docker:index/image:Image";
    const labelsOf = (r: RecordedResource) =>
      Object.fromEntries(
        (r.inputs.labels as { label: string; value: string }[]).map((l) => [l.label, l.value]),
      );

    it("production: one scheduler container on the host, restarted with the engine, no engine socket, only what a backup needs", function () {
      const run = runs.production;
      const scheduler = run.byName("edms-scheduler-container");
      expect(scheduler.inputs).to.deep.include({
        name: "edms-scheduler",
        restart: "unless-stopped",
        command: ["scheduler", "--stack", "production"],
        // The backups volume and the media read-only: no host path.
        volumes: [
          { volumeName: "edms_backups", containerPath: "/backups", readOnly: false },
          { volumeName: "edms_media_files", containerPath: "/edms/media", readOnly: true },
        ],
      });
      // The data network (postgres) only: the shipped production stack sends no alerts and copies nowhere.
      expect(scheduler.inputs.networksAdvanced).to.deep.equal([{ name: "edms-data" }]);
      expect(scheduler.deleteBeforeReplace).to.equal(true);
      expect(labelsOf(scheduler)).to.deep.equal({
        "edms.stack": "production",
        "edms.environment": "production",
        "edms.role": "scheduler",
      });
      // Plain settings only: no secret, and no `docker:host` (it has no engine at all).
      const envs = scheduler.inputs.envs as string[];
      expect(envs.map((e) => e.split("=")[0])).to.deep.equal([
        "EDMS_STACK",
        "EDMS_SETTINGS_JSON",
        "EDMS_ENGINE",
        "EDMS_MOUNTS",
      ]);
      expect(envs).to.include("EDMS_ENGINE=none");
      expect(JSON.parse(envs[3].slice("EDMS_MOUNTS=".length))).to.deep.equal({
        edms_backups: { path: "/backups" },
        edms_media_files: { path: "/edms/media", readOnly: true },
      });
      // Its one secret: the backup role's pgpass file, root-only.
      expect(scheduler.secretInputs).to.deep.equal(["uploads.0.content"]);
      expect(scheduler.inputs.uploads[0]).to.deep.include({
        file: "/run/secrets/backup_db.pgpass",
        permissions: "0400",
      });
      expect(scheduler.inputs.uploads[0].content).to.match(/^\*:\*:\*:edms_backup:mock-secret-/);
      for (const env of envs) {
        expect(env).not.to.match(MOCK_SECRET);
      }
      const settings = JSON.parse(envs[1].slice("EDMS_SETTINGS_JSON=".length));
      expect(settings).not.to.have.property("dockerHost");
      expect(settings.backup).to.deep.include({ schedule: "0 */6 * * *", keep: 14 });
      // After the repository and its keys are on the host, and after a first deploy's bootstrap: no run
      // backs up a half-made database as real data.
      expect(scheduler.dependsOnOnly).to.include.members(["backupInit", "bootstrap"]);
      expect(scheduler.dependencies).to.include("edms-scheduler-image");
    });

    it("builds its image on the Docker host from the bundle, tagged by content, never pushed", function () {
      const image = runs.production.byName("edms-scheduler-image");
      expect(image.type).to.equal(SCHEDULER_IMAGE);
      expect(image.inputs.skipPush).to.equal(true);
      expect(image.inputs.imageName).to.match(/^edms-scheduler:[0-9a-f]{12}$/);
      expect(image.inputs.build.context).to.match(/\/build\/scheduler$/);
      expect(image.inputs.build.dockerfile).to.match(/\/images\/scheduler\/Dockerfile$/);
      expect(image.inputs.build.args).to.deep.equal({
        BASE: "node:20-bookworm-slim",
        POSTGRES: "postgres:16",
        RESTIC: "restic/restic:0.18.0",
      });
      expect(runs.production.byName("edms-scheduler-container").inputs.image).to.equal(
        image.inputs.imageName,
      );
      expect(fs.existsSync(path.join(image.inputs.build.context, "edms-ops.cjs"))).to.equal(true);
    });

    it("a new base image gives a new tag, so the container is replaced; the same inputs keep it", async function () {
      const tag = (run: ProgramRun) => run.byName("edms-scheduler-image").inputs.imageName;
      const same = await runProgram({ stack: "staging" });
      expect(tag(same)).to.equal(tag(runs.staging));
      const rebased = await runProgram({
        stack: "staging",
        overrides: { "edms:backup": { schedulerImage: "node:22-bookworm-slim" } },
      });
      expect(rebased.error).to.equal(undefined);
      expect(tag(rebased)).not.to.equal(tag(runs.staging));
    });

    it("a stack file that still sets the former dockerCliImage loads (and rolls back) with a warning to remove it", async function () {
      const old = await runProgram({
        stack: "staging",
        overrides: { "edms:backup": { dockerCliImage: "docker:27-cli" } },
      });
      expect(old.error).to.equal(undefined);
      expect(old.warnings.join("\n")).to.contain(
        "`edms:backup.dockerCliImage` is no longer used: the scheduler has no docker CLI and no engine socket. Remove it",
      );
      expect(old.byName("edms-scheduler-image").inputs.build.args).not.to.have.property(
        "DOCKER_CLI",
      );
    });

    it("staging defaults to daily; dev and `schedule: off` have no scheduler", async function () {
      const staging = JSON.parse(
        runs.staging
          .byName("edms-scheduler-container")
          .inputs.envs[1].split("=")
          .slice(1)
          .join("="),
      );
      expect(staging.backup.schedule).to.equal("@daily");
      const names = (run: ProgramRun) => run.resources.map((r) => r.name);
      expect(names(runs.dev).filter((n) => n.includes("scheduler"))).to.deep.equal([]);
      const off = await runProgram({
        stack: "staging",
        overrides: { "edms:backup": { schedule: "off" } },
      });
      expect(off.error).to.equal(undefined);
      expect(names(off).filter((n) => n.includes("scheduler"))).to.deep.equal([]);
      const on = await runProgram({
        stack: "dev",
        overrides: { "edms:backup": { schedule: "*/15 * * * * *" } },
      });
      expect(on.byName("edms-scheduler-container").inputs.name).to.equal("edms-dev-scheduler");
    });

    it("uploads the alert targets into the scheduler as secret root-only files, never env", async function () {
      const token = "mock-secret-alert-token-77";
      const run = await runProgram({
        stack: "staging",
        overrides: {
          "edms:alerts": {
            apprise: [{ secure: `json://alerts.example.com/${token}` }],
            webhook: { secure: `https://hooks.example.com/${token}` },
          },
        },
      });
      expect(run.error).to.equal(undefined);
      const scheduler = run.byName("edms-scheduler-container");
      expect(
        scheduler.inputs.uploads.map((u: { file: string; permissions: string }) => [
          u.file,
          u.permissions,
        ]),
      ).to.deep.equal([
        ["/run/secrets/backup_db.pgpass", "0400"],
        ["/run/secrets/edms-alerts/apprise.txt", "0400"],
        ["/run/secrets/edms-alerts/webhook", "0400"],
      ]);
      expect(scheduler.inputs.uploads[1].content).to.equal(`json://alerts.example.com/${token}\n`);
      expect(scheduler.secretInputs).to.include.members([
        "uploads.0.content",
        "uploads.1.content",
        "uploads.2.content",
      ]);
      // Alert targets are outside: Docker's default bridge joins the data network, never the front one.
      expect(scheduler.inputs.networksAdvanced).to.deep.equal([
        { name: "edms-staging-data" },
        { name: "bridge" },
      ]);
      for (const resource of run.resources) {
        // eslint-disable-next-line @typescript-eslint/no-unused-vars
        const { uploads, ...rest } = resource.inputs as Record<string, unknown>;
        expect(JSON.stringify(rest), resource.name).not.to.contain(token);
      }
      const plain = await runProgram({
        stack: "staging",
        overrides: { "edms:alerts": { webhook: `https://hooks.example.com/${token}` } },
      });
      expect(String(plain.error)).to.contain("alerts.webhook holds a URL in plain text");
      expect(String(plain.error)).not.to.contain(token);
    });

    it("refuses `schedule: off` on production before creating anything", async function () {
      const run = await runProgram({
        stack: "production",
        overrides: { "edms:backup": { schedule: "off" } },
      });
      expect(String(run.error)).to.match(
        /`edms:backup.schedule: off` is not allowed on production/,
      );
      expect(run.resources.filter((r) => r.type.startsWith("docker:"))).to.deep.equal([]);
    });
  });
});
