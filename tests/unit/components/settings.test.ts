import { expect } from "chai";
import { ProgramRun, RecordedResource, runProgram, useStackRuns } from "../../harness/mocks";

const VOLUME = "docker:index/volume:Volume";
const CONTAINER = "docker:index/container:Container";
const IMAGE = "docker:index/remoteImage:RemoteImage";

const volumeByRole = (run: ProgramRun, role: string): RecordedResource =>
  run.byName(`edms-data-${role}`);

describe("the program's settings: docker host, data generation, off-host credentials, passwords", function () {
  const runs = useStackRuns();

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

  it("uses edms:superuserPassword when set, as a secret", async function () {
    const run = await runProgram({
      stack: "dev",
      overrides: { "edms:superuserPassword": { secure: "mock-secret-given" } },
    });
    expect(run.outputs.superuserPassword).to.deep.equal({ secret: "mock-secret-given" });
    expect(run.resources.map((r) => r.name)).not.to.include("edms-secrets-superuser-password");
  });
});
