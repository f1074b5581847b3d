import { expect } from "chai";
import {
  mockImageId,
  ProgramRun,
  RecordedResource,
  runProgram,
  stackRunTimings,
  useStackRuns,
} from "../../harness/mocks";

const VOLUME = "docker:index/volume:Volume";
const CONTAINER = "docker:index/container:Container";
const COMMAND = "command:local:Command";
const MOCK_SECRET = /mock-secret-/;

const volumeByRole = (run: ProgramRun, role: string): RecordedResource =>
  run.byName(`edms-data-${role}`);

describe("the program on each stack file", function () {
  const runs = useStackRuns();
  const timings = stackRunTimings();

  for (const stack of ["dev", "staging", "production"]) {
    describe(`stack ${stack}`, function () {
      it("evaluates without error", function () {
        expect(runs[stack].error, String(runs[stack].error?.stack)).to.equal(undefined);
        // The < 3 s target is reported, not asserted: timing assertions flake on a loaded machine.
        console.log(`      (${stack}: evaluated under mocks in ${timings[stack]} ms)`);
        const version = runs[stack].outputs.version;
        expect(runs[stack].ofType(CONTAINER).map((c) => c.inputs.name)).to.have.members(
          [
            "postgres",
            "redis",
            "proxy",
            `web-${version}`,
            "worker",
            // edms:backup.schedule: off by default on dev.
            ...(stack === "dev" ? [] : ["scheduler"]),
          ].map((p) => `${runs[stack].outputs.volumes ? prefixOf(runs[stack]) : ""}-${p}`),
        );
      });

      it("replaces fixed-name containers delete-first and stops them gracefully", function () {
        // Per-release web names make the release switch create-before-delete (see the two-release test);
        // within one resource every name is fixed, so a replacement must still delete first.
        for (const container of runs[stack].ofType(CONTAINER)) {
          expect(container.deleteBeforeReplace, container.name).to.equal(true);
        }
        const grace = (role: string) =>
          runs[stack].ofType(CONTAINER).find((c) => c.name.includes(`-${role}`))?.inputs
            .destroyGraceSeconds;
        expect(grace("worker")).to.equal(60); // celery warm shutdown: running tasks finish
        expect(grace("web")).to.equal(30);
        expect(grace("proxy")).to.equal(30);
        if (stack !== "dev") {
          expect(grace("scheduler")).to.equal(30); // records an interrupted backup before it exits
        }
      });

      it("publishes only the proxy's port; web, postgres and redis have none", function () {
        const published = runs[stack]
          .ofType(CONTAINER)
          .filter((c) => (c.inputs.ports ?? []).length > 0);
        expect(published.map((c) => c.name)).to.deep.equal(["edms-proxy-container"]);
        // Pulumi.production.yaml ends TLS upstream: its port binds to loopback only; the others keep
        // Docker's default (every interface), the inputs they always had.
        expect(published[0].inputs.ports).to.deep.equal([
          {
            internal: 8080,
            external: 8000,
            ...(stack === "production" ? { ip: "127.0.0.1" } : {}),
          },
        ]);
      });

      it("labels every volume with environment, stack and data kind", function () {
        for (const role of ["postgres", "media", "backups", "redis"]) {
          const labels = Object.fromEntries(
            (
              volumeByRole(runs[stack], role).inputs.labels as { label: string; value: string }[]
            ).map((l) => [l.label, l.value]),
          );
          expect(labels).to.include({
            "edms.environment": stack,
            "edms.stack": stack,
            "edms.data": role === "redis" ? "cache" : "persistent",
          });
        }
      });

      it("keeps secrets secret: outputs, uploads and hook environment; never in env values or argv", function () {
        const run = runs[stack];
        expect(run.outputs.superuserPassword).to.have.property("secret").that.matches(MOCK_SECRET);
        for (const container of run.ofType(CONTAINER)) {
          for (const env of container.inputs.envs ?? []) {
            expect(env, `${container.name} env`).not.to.match(MOCK_SECRET);
          }
          for (const [i, upload] of (container.inputs.uploads ?? []).entries()) {
            if (container.name === "edms-proxy-container") {
              // haproxy.cfg and the live.cfg placeholder: configuration, no secret in them.
              expect(upload.content).not.to.match(MOCK_SECRET);
              continue;
            }
            expect(upload.content).to.match(MOCK_SECRET);
            expect(container.secretInputs, container.name).to.include(`uploads.${i}.content`);
          }
        }
        for (const hook of run.ofType(COMMAND)) {
          expect(hook.inputs.create).not.to.match(MOCK_SECRET);
          const secretVars = Object.keys(hook.inputs.environment).filter((k) =>
            MOCK_SECRET.test(hook.inputs.environment[k]),
          );
          for (const name of secretVars) {
            expect(hook.secretInputs, hook.name).to.include(`environment.${name}`);
          }
          expect(hook.inputs.logging, hook.name).to.equal(
            secretVars.length > 0 ? "none" : "stdoutAndStderr",
          );
        }
        // The backup repositories' password: a secret stack output, and only the backupInit hook gets it.
        expect(run.outputs.backupPassword).to.have.property("secret").that.matches(MOCK_SECRET);
        expect(run.byName("backupInit").secretInputs).to.include(
          "environment.EDMS_RESTIC_PASSWORD",
        );
        for (const hook of run.ofType(COMMAND).filter((h) => h.name !== "backupInit")) {
          expect(hook.inputs.environment, hook.name).not.to.have.property("EDMS_RESTIC_PASSWORD");
        }
        expect(run.byName("bootstrap").inputs.environment).to.have.keys(
          "EDMS_STACK",
          "EDMS_SETTINGS_JSON",
          "EDMS_POSTGRES_PASSWORD",
          "EDMS_DJANGO_SECRET_KEY",
          "EDMS_REDIS_PASSWORD",
          "EDMS_SUPERUSER_PASSWORD",
          ...(stack === "dev" ? [] : ["DOCKER_HOST"]),
        );
      });

      it("orders the deploy: backup → migrate → bootstrap → web/worker → proxy switch → health → record", function () {
        const run = runs[stack];
        const webContainer = `edms-web-${run.outputs.version}-container`;
        // What the engine orders by (input edges included), and apart from it the edges that exist only
        // because of an explicit `dependsOn`: dropping one of those from components/edms.ts breaks the order
        // without changing any input.
        const deps = (name: string) => run.byName(name).dependencies;
        const explicit = (name: string) => run.byName(name).dependsOnOnly;
        expect(deps("backupInit")).to.include.members([
          "edms-postgres-container",
          "edms-data-backups",
        ]);
        expect(explicit("backupInit")).to.include.members([
          "edms-redis-container",
          "edms-data-backups",
          "edms-data-media",
        ]);
        if (stack === "production") {
          // The drill sits between the backup and migrate: a backup that does not restore stops the deploy.
          expect(explicit("migrate")).to.include("preDeployDrill");
          // Handed the backup hook's output (its stdout: nothing under these mocks): an input edge.
          expect(run.byName("preDeployDrill").inputDependencies).to.include("preDeployBackup");
          // It runs the new release's checks and migration rehearsal: its image is pulled first (the
          // release's image id is one of its triggers).
          expect(run.byName("preDeployDrill").inputDependencies).to.include("edms-backend-image");
          expect(deps("preDeployDrill")).not.to.include("migrate");
          expect(run.byName("preDeployDrill").inputs.create).to.equal(
            `node ops/bin/edms-ops.js drill --backup-id '' --reason pre-deploy --stack production`,
          );
        } else {
          expect(run.resources.map((r) => r.name)).not.to.include("preDeployDrill");
        }
        if (stack !== "dev") {
          expect(deps(stack === "production" ? "preDeployDrill" : "migrate")).to.include(
            "preDeployBackup",
          );
          if (stack !== "production") {
            expect(explicit("migrate")).to.include("preDeployBackup");
          }
          expect(explicit("preDeployBackup")).to.include.members([
            "edms-postgres-container",
            "edms-redis-container",
            "backupInit",
          ]);
        } else {
          expect(run.resources.map((r) => r.name)).not.to.include("preDeployBackup");
          expect(explicit("migrate")).to.include("backupInit");
          expect(deps("migrate")).to.include("edms-postgres-container");
        }
        expect(deps("migrate")).to.include("edms-backend-image");
        expect(explicit("bootstrap")).to.deep.equal(["migrate"]);
        expect(explicit(webContainer)).to.deep.equal(["bootstrap"]);
        expect(explicit("edms-worker-container")).to.deep.equal(["bootstrap"]);
        expect(deps("proxySwitch")).to.include.members([
          webContainer,
          "edms-worker-container",
          "edms-proxy-container",
        ]);
        // The switch reads no output of the worker: only dependsOn keeps it after the new worker.
        expect(explicit("proxySwitch")).to.include("edms-worker-container");
        expect(run.byName("proxySwitch").inputs.create).to.match(/ switch --wait \d+ /);
        // The proxy never waits for the release: it exists before the first switch.
        expect(deps("edms-proxy-container")).not.to.include("bootstrap");
        expect(deps("healthGate")).to.include.members([webContainer, "edms-worker-container"]);
        expect(explicit("healthGate")).to.include("proxySwitch");
        expect(explicit("recordDeployment")).to.deep.equal(["healthGate"]);
      });

      it("runs migrate per release, per database and per application-role password, bootstrap per database, and no hook on other input changes", function () {
        const run = runs[stack];
        const version = run.outputs.version;
        const database = [volumeByRole(run, "postgres").inputs.name, "edms-postgres-container-id"];
        expect(run.byName("migrate").inputs.triggers).to.deep.equal([
          version,
          mockImageId(`edms-sample/backend:${version}`),
          ...database,
          "mock-secret-edms-secrets-app-db-password-Zq7",
          "mock-secret-edms-secrets-backup-db-password-Zq7",
        ]);
        expect(run.byName("bootstrap").inputs.triggers).to.deep.equal(database);
        expect(run.byName("healthGate").inputs.triggers.slice(0, 2)).to.deep.equal([
          version,
          mockImageId(`edms-sample/backend:${version}`),
        ]);
        for (const hook of run.ofType(COMMAND)) {
          expect(hook.inputs.update, hook.name).to.equal("true");
          expect(hook.inputs.create).to.match(/^node ops\/bin\/edms-ops\.js /);
          expect(hook.inputs.create).to.contain(`--stack ${stack}`);
        }
      });
    });
  }

  function prefixOf(run: ProgramRun): string {
    return String((run.outputs.volumes as { postgres: string }).postgres).split("_")[0];
  }

  it("production: postgres, media and backups volumes are protected and retained; redis is not", function () {
    const run = runs.production;
    for (const role of ["postgres", "media", "backups"]) {
      expect(volumeByRole(run, role), role).to.include({ protect: true, retainOnDelete: true });
    }
    expect(volumeByRole(run, "redis")).to.include({ protect: false, retainOnDelete: false });
  });

  it("production: backs up before every deploy, by default and keeping 14", async function () {
    // Pulumi.production.yaml spells the defaults out; without the key the program must still choose them.
    const run = await runProgram({ stack: "production", overrides: { "edms:backup": null } });
    expect(run.error).to.equal(undefined);
    const settings = JSON.parse(
      run.byName("preDeployBackup").inputs.environment.EDMS_SETTINGS_JSON,
    );
    expect(settings.backup).to.deep.include({ beforeDeploy: true, keep: 14 });
    expect(run.byName("preDeployBackup").inputs.create).to.contain("backup --reason pre-deploy");
    // On production the drill sits between them: migrate → preDeployDrill → preDeployBackup.
    expect(run.byName("migrate").dependsOnOnly).to.include("preDeployDrill");
    expect(run.byName("preDeployDrill").dependencies).to.include("preDeployBackup");
    const staging = await runProgram({ stack: "staging", overrides: { "edms:backup": null } });
    expect(
      JSON.parse(staging.byName("migrate").inputs.environment.EDMS_SETTINGS_JSON).backup,
    ).to.deep.include({
      beforeDeploy: false,
      keep: 5,
    });
    expect(staging.resources.map((r) => r.name)).not.to.include("preDeployBackup");
  });

  it("data volumes are replaced create-first, overriding the provider's delete-first for a set name: a dataGeneration bump backs up the earlier generation before anything of it goes", function () {
    for (const stack of ["dev", "staging", "production"]) {
      for (const role of ["postgres", "media", "backups", "redis"]) {
        expect(volumeByRole(runs[stack], role), `${stack} ${role}`).to.include({
          deleteBeforeReplace: false,
          deleteBeforeReplaceDefined: true,
        });
      }
    }
  });

  for (const stack of ["dev", "staging"]) {
    it(`${stack}: no volume is protected or retained`, function () {
      for (const volume of runs[stack].ofType(VOLUME)) {
        expect(volume, volume.name).to.include({ protect: false, retainOnDelete: false });
      }
    });
  }
});
