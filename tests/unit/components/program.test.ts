import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { defaultNewResource, ProgramRun, RecordedResource, runProgram } from "../../harness/mocks";

const VOLUME = "docker:index/volume:Volume";
const CONTAINER = "docker:index/container:Container";
const COMMAND = "command:local:Command";
const IMAGE = "docker:index/remoteImage:RemoteImage";
const MOCK_SECRET = /mock-secret-/;

const volumeByRole = (run: ProgramRun, role: string): RecordedResource =>
  run.byName(`edms-data-${role}`);

describe("program under mocks", function () {
  const runs: Record<string, ProgramRun> = {};
  const timings: Record<string, number> = {};

  before(async function () {
    for (const stack of ["dev", "staging", "production"]) {
      const started = Date.now();
      runs[stack] = await runProgram({ stack });
      timings[stack] = Date.now() - started;
    }
  });

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
        expect(published[0].inputs.ports).to.deep.equal([{ internal: 8080, external: 8000 }]);
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
          expect(explicit("preDeployDrill")).to.include("preDeployBackup");
          expect(deps("preDeployDrill")).not.to.include("migrate");
          expect(run.byName("preDeployDrill").inputs.create).to.equal(
            `node ops/bin/edms-ops.js drill latest --target-version ${run.outputs.version} --reason pre-deploy --stack production`,
          );
        } else {
          expect(run.resources.map((r) => r.name)).not.to.include("preDeployDrill");
        }
        if (stack !== "dev") {
          expect(explicit(stack === "production" ? "preDeployDrill" : "migrate")).to.include(
            "preDeployBackup",
          );
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

      it("runs migrate per release and per database, bootstrap per database, and no hook on other input changes", function () {
        const run = runs[stack];
        const version = run.outputs.version;
        const database = [volumeByRole(run, "postgres").inputs.name, "edms-postgres-container-id"];
        expect(run.byName("migrate").inputs.triggers).to.deep.equal([
          version,
          `sha256:mock-edms-sample/backend:${version}`,
          ...database,
        ]);
        expect(run.byName("bootstrap").inputs.triggers).to.deep.equal(database);
        expect(run.byName("healthGate").inputs.triggers.slice(0, 2)).to.deep.equal([
          version,
          `sha256:mock-edms-sample/backend:${version}`,
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
    expect(run.byName("preDeployDrill").dependsOnOnly).to.include("preDeployBackup");
    const staging = await runProgram({ stack: "staging", overrides: { "edms:backup": null } });
    expect(
      JSON.parse(staging.byName("migrate").inputs.environment.EDMS_SETTINGS_JSON).backup,
    ).to.deep.include({
      beforeDeploy: false,
      keep: 5,
    });
    expect(staging.resources.map((r) => r.name)).not.to.include("preDeployBackup");
  });

  for (const stack of ["dev", "staging"]) {
    it(`${stack}: no volume is protected or retained`, function () {
      for (const volume of runs[stack].ofType(VOLUME)) {
        expect(volume, volume.name).to.include({ protect: false, retainOnDelete: false });
      }
    });
  }

  describe("scheduled backups (edms:backup.schedule)", function () {
    const SCHEDULER_IMAGE = "docker:index/image:Image";
    const labelsOf = (r: RecordedResource) =>
      Object.fromEntries(
        (r.inputs.labels as { label: string; value: string }[]).map((l) => [l.label, l.value]),
      );

    it("production: one scheduler container on the host, restarted with the engine, socket read-only, no secret", function () {
      const run = runs.production;
      const scheduler = run.byName("edms-scheduler-container");
      expect(scheduler.inputs).to.deep.include({
        name: "edms-scheduler",
        restart: "unless-stopped",
        command: ["scheduler", "--stack", "production"],
        volumes: [
          {
            hostPath: "/var/run/docker.sock",
            containerPath: "/var/run/docker.sock",
            readOnly: true,
          },
        ],
      });
      expect(scheduler.deleteBeforeReplace).to.equal(true);
      expect(labelsOf(scheduler)).to.deep.equal({
        "edms.stack": "production",
        "edms.environment": "production",
        "edms.role": "scheduler",
      });
      // Plain settings only: no secret, and no `docker:host` (it runs on that host, on its socket).
      const envs = scheduler.inputs.envs as string[];
      expect(envs.map((e) => e.split("=")[0])).to.deep.equal(["EDMS_STACK", "EDMS_SETTINGS_JSON"]);
      expect(scheduler.secretInputs).to.deep.equal([]);
      for (const env of envs) {
        expect(env).not.to.match(MOCK_SECRET);
      }
      const settings = JSON.parse(envs[1].slice("EDMS_SETTINGS_JSON=".length));
      expect(settings).not.to.have.property("dockerHost");
      expect(settings.backup).to.deep.include({ schedule: "0 */6 * * *", keep: 14 });
      // After the repository and its keys are on the host.
      expect(scheduler.dependsOnOnly).to.include("backupInit");
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
        DOCKER_CLI: "docker:27-cli",
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
        ["/run/secrets/edms-alerts/apprise.txt", "0400"],
        ["/run/secrets/edms-alerts/webhook", "0400"],
      ]);
      expect(scheduler.inputs.uploads[0].content).to.equal(`json://alerts.example.com/${token}\n`);
      expect(scheduler.secretInputs).to.include.members(["uploads.0.content", "uploads.1.content"]);
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

  it("takes the docker host from `docker:host`, for the provider and the hooks alike", function () {
    const provider = runs.production.ofType("pulumi:providers:docker")[0];
    expect(provider.inputs.host).to.equal("ssh://deploy@edms.internal");
    expect(runs.production.byName("migrate").inputs.environment.DOCKER_HOST).to.equal(
      "ssh://deploy@edms.internal",
    );
    const local = runs.dev.ofType("pulumi:providers:docker")[0];
    expect(local.inputs.host).to.equal(undefined);
    // Every Docker resource must go through that provider, not the default one (which would target the
    // local socket): the registration carries `<provider urn>::<id>`.
    for (const run of [runs.production, runs.dev]) {
      const [explicitProvider] = run.ofType("pulumi:providers:docker");
      const dockerResources = run.resources.filter((r) => r.type.startsWith("docker:index/"));
      expect(dockerResources.map((r) => r.type)).to.include.members([CONTAINER, VOLUME, IMAGE]);
      for (const resource of dockerResources) {
        expect(resource.provider, resource.name).to.match(/::[^:]+$/);
        expect(resource.provider.replace(/::[^:]+$/, ""), resource.name).to.equal(
          explicitProvider.urn,
        );
      }
    }
  });

  it("dataGeneration: 2 on staging gives fresh data volumes named _g2 but keeps the backups volume", async function () {
    const run = await runProgram({ stack: "staging", overrides: { "edms:dataGeneration": 2 } });
    expect(run.error).to.equal(undefined);
    expect(volumeByRole(run, "postgres").inputs.name).to.equal("edms-staging_postgres_data_g2");
    expect(volumeByRole(run, "media").inputs.name).to.equal("edms-staging_media_files_g2");
    expect(volumeByRole(run, "redis").inputs.name).to.equal("edms-staging_redis_data_g2");
    expect(volumeByRole(run, "backups").inputs.name).to.equal("edms-staging_backups");
    expect(run.byName("bootstrap").inputs.triggers[0]).to.equal("edms-staging_postgres_data_g2");
    expect(run.byName("migrate").inputs.triggers).to.include("edms-staging_postgres_data_g2");
  });

  it("off-host credentials (set with --secret --path) reach only the backupInit hook, as secrets", async function () {
    const repository = "rest:https://u:Offsite-Pw-42@backup.example/edms/";
    const run = await runProgram({
      stack: "production",
      overrides: {
        "edms:backup": {
          keep: 14,
          offsite: {
            repository: { secure: repository },
            env: { AWS_SECRET_ACCESS_KEY: { secure: "Aws-Key-43" } },
          },
        },
      },
    });
    expect(run.error).to.equal(undefined);
    const init = run.byName("backupInit");
    expect(init.inputs.environment.EDMS_OFFSITE_REPOSITORY).to.equal(repository);
    expect(JSON.parse(init.inputs.environment.EDMS_OFFSITE_ENV)).to.deep.equal({
      AWS_SECRET_ACCESS_KEY: "Aws-Key-43",
    });
    expect(init.secretInputs).to.include.members([
      "environment.EDMS_OFFSITE_REPOSITORY",
      "environment.EDMS_OFFSITE_ENV",
      "environment.EDMS_RESTIC_PASSWORD",
    ]);
    expect(init.inputs.logging).to.equal("none");
    for (const resource of run.resources) {
      const plain = JSON.stringify(resource.inputs.environment?.EDMS_SETTINGS_JSON ?? "");
      expect(plain, resource.name).not.to.match(/Offsite-Pw-42|Aws-Key-43/);
    }
    const settings = JSON.parse(init.inputs.environment.EDMS_SETTINGS_JSON);
    // As edms-ops sees it in the stack file: encrypted, so not even a redacted URL is shown.
    expect(settings.backup.offsite).to.deep.equal({ display: "(secret)" });
  });

  it("refuses dataGeneration on production before creating anything", async function () {
    const run = await runProgram({ stack: "production", overrides: { "edms:dataGeneration": 1 } });
    expect(run.error?.message).to.match(/`edms:dataGeneration` is not allowed on production/);
    expect(run.resources.filter((r) => r.type !== "pulumi:providers:docker")).to.have.length(0);
  });

  it("a failing pre-deploy drill stops a production deploy before migrate: nothing of the new release starts", async function () {
    const run = await runProgram({
      stack: "production",
      newResource: async (args) => {
        if (args.name === "preDeployDrill") {
          throw new Error("drill of the pre-deploy backup failed");
        }
        return defaultNewResource(args);
      },
    });
    expect(run.error?.message).to.match(/drill of the pre-deploy backup failed/);
    const registered = run.resources.map((r) => r.name);
    expect(registered).to.include.members(["preDeployBackup", "preDeployDrill"]);
    for (const never of ["migrate", "bootstrap", "edms-web-2.0.0-container", "healthGate"]) {
      expect(registered, never).not.to.include(never);
    }
  });

  it("a failing migrate hook stops the deploy there: no bootstrap, web, worker, health or record", async function () {
    const run = await runProgram({
      stack: "production",
      newResource: async (args) => {
        if (args.name === "migrate") {
          throw new Error("migration 0003 failed");
        }
        return defaultNewResource(args);
      },
    });
    expect(run.error?.message).to.match(/migration 0003 failed/);
    const registered = run.resources.map((r) => r.name);
    expect(registered).to.include.members([
      "preDeployBackup",
      "migrate",
      "edms-postgres-container",
    ]);
    for (const never of [
      "bootstrap",
      "edms-web-2.0.0-container",
      "proxySwitch",
      "edms-worker-container",
      "healthGate",
      "recordDeployment",
    ]) {
      expect(registered, never).not.to.include(never);
    }
  });

  describe("proxy: zero-downtime release switch", function () {
    let v1: ProgramRun;
    let v2: ProgramRun;
    before(async function () {
      v1 = await runProgram({ stack: "staging", overrides: { "edms:version": "1.0.0" } });
      v2 = await runProgram({ stack: "staging", overrides: { "edms:version": "2.0.0" } });
      expect(v1.error).to.equal(undefined);
      expect(v2.error).to.equal(undefined);
    });
    const urns = (run: ProgramRun) => run.ofType(CONTAINER).map((c) => c.urn);

    it("a new release's web is a new resource and name: created beside the old one, which the engine deletes after the update", function () {
      expect(v1.byName("edms-web-1.0.0-container").inputs.name).to.equal("edms-staging-web-1.0.0");
      expect(v2.byName("edms-web-2.0.0-container").inputs.name).to.equal("edms-staging-web-2.0.0");
      // The only container URN that changes is web's: for the engine that is one create and, once the update
      // has succeeded, one delete of the resource the program no longer declares. No replace, so no pending
      // delete that a failed update would leave for the next `pulumi up` to run first.
      expect(urns(v1).filter((u) => !urns(v2).includes(u))).to.deep.equal([
        v1.byName("edms-web-1.0.0-container").urn,
      ]);
      expect(urns(v2).filter((u) => !urns(v1).includes(u))).to.deep.equal([
        v2.byName("edms-web-2.0.0-container").urn,
      ]);
    });

    it("the proxy's inputs do not change with the release, so an update never replaces it", function () {
      expect(v2.byName("edms-proxy-container").inputs).to.deep.equal(
        v1.byName("edms-proxy-container").inputs,
      );
      const cfg = v2.byName("edms-proxy-container").inputs.uploads[0].content as string;
      expect(cfg).to.contain("bind :8080").and.to.contain("hard-stop-after");
      expect(cfg).not.to.contain("2.0.0");
    });

    it("the worker keeps one fixed name, replaced delete-first: the old release's worker stops before the new one starts", function () {
      const w1 = v1.byName("edms-worker-container");
      const w2 = v2.byName("edms-worker-container");
      expect(w1.urn).to.equal(w2.urn);
      expect(w2.inputs.name).to.equal("edms-staging-worker");
      expect(w2.deleteBeforeReplace).to.equal(true);
      expect(w2.inputs.labels).to.deep.include({ label: "edms.version", value: "2.0.0" });
    });

    it("switches only after the new web exists and before the health gate; migrate still precedes both", function () {
      expect(v2.byName("proxySwitch").inputs.triggers.slice(0, 2)).to.deep.equal([
        "2.0.0",
        "sha256:mock-edms-sample/backend:2.0.0",
      ]);
      expect(v2.byName("edms-web-2.0.0-container").dependsOnOnly).to.include("bootstrap");
      expect(v2.byName("healthGate").dependsOnOnly).to.include("proxySwitch");
      expect(v2.byName("recordDeployment").dependsOnOnly).to.include("healthGate");
    });
  });

  it("edms:proxy.enabled false: today's graph (one fixed web publishes the port, no proxy, no switch)", async function () {
    const run = await runProgram({
      stack: "staging",
      overrides: { "edms:proxy": { enabled: false } },
    });
    expect(run.error).to.equal(undefined);
    expect(run.ofType(CONTAINER).map((c) => c.inputs.name)).to.have.members(
      ["postgres", "redis", "web", "worker", "scheduler"].map((p) => `edms-staging-${p}`),
    );
    expect(run.byName("edms-web-container").inputs.ports).to.deep.equal([
      { internal: 8000, external: 8000 },
    ]);
    expect(run.resources.map((r) => r.name)).not.to.include("proxySwitch");
    expect(run.byName("healthGate").dependencies).to.include.members([
      "edms-web-container",
      "edms-worker-container",
    ]);
  });

  describe("proxy TLS", function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-tls-"));
    const cert = path.join(dir, "edms.crt");
    const key = path.join(dir, "edms.key");
    fs.writeFileSync(cert, "-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n");
    fs.writeFileSync(
      key,
      "-----BEGIN PRIVATE KEY-----\nmock-secret-key\n-----END PRIVATE KEY-----\n",
    );
    const tls = (extra: Record<string, unknown> = {}) => ({
      "edms:proxy": { tls: { port: 8443, certificateFile: cert, keyFile: key, ...extra } },
    });

    it("terminates TLS at the proxy: key and certificate uploaded as one secret file, never in env or argv", async function () {
      const run = await runProgram({ stack: "production", overrides: tls() });
      expect(run.error).to.equal(undefined);
      const proxy = run.byName("edms-proxy-container");
      expect(proxy.inputs.ports).to.deep.equal([
        { internal: 8080, external: 8000 },
        { internal: 8443, external: 8443 },
      ]);
      const i = proxy.inputs.uploads.findIndex((u: { file: string }) => u.file.endsWith(".pem"));
      expect(proxy.inputs.uploads[i].content).to.contain("BEGIN PRIVATE KEY");
      expect(proxy.secretInputs).to.include(`uploads.${i}.content`);
      expect(proxy.inputs.uploads[0].content).to.match(/bind :8443 ssl crt \S+\.pem/);
      for (const resource of run.resources) {
        expect(JSON.stringify(resource.inputs.envs ?? []), resource.name).not.to.contain("PRIVATE");
        expect(JSON.stringify(resource.inputs.environment ?? {}), resource.name).not.to.contain(
          "PRIVATE",
        );
        expect(String(resource.inputs.create ?? ""), resource.name).not.to.contain("PRIVATE");
      }
      expect(run.outputs.url).to.equal("https://localhost:8443/");
    });

    it("names an unreadable certificate file and creates nothing", async function () {
      const run = await runProgram({
        stack: "production",
        overrides: tls({ keyFile: path.join(dir, "missing.key") }),
      });
      expect(run.error?.message).to.match(/`edms:proxy\.tls\.keyFile` cannot be read/);
      expect(run.resources.filter((r) => r.type === CONTAINER)).to.have.length(0);
    });
  });

  it("uses edms:superuserPassword when set, as a secret", async function () {
    const run = await runProgram({
      stack: "dev",
      overrides: { "edms:superuserPassword": { secure: "mock-secret-given" } },
    });
    expect(run.outputs.superuserPassword).to.deep.equal({ secret: "mock-secret-given" });
    expect(run.resources.map((r) => r.name)).not.to.include("edms-secrets-superuser-password");
  });
});
