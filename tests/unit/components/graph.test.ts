/**
 * The undo of a fresh start: a `dataGeneration` bump replaces the postgres container with one on new volumes,
 * so the hook that backs up the running (earlier) generation must come before that container, keyed on the
 * generation only; production, where dataGeneration is a config error, has no such hook.
 */
import { expect } from "chai";
import { runProgram } from "../../harness/mocks";

describe("fresh start backup (dataGeneration undo)", function () {
  this.timeout(60000);

  for (const stack of ["dev", "staging"]) {
    it(`${stack}: backs up the earlier generation before the postgres container is (re)created`, async function () {
      const run = await runProgram({ stack, overrides: { "edms:dataGeneration": 2 } });
      expect(run.error).to.equal(undefined);
      const hook = run.byName("freshStartBackup");
      expect(hook.inputs.create).to.match(
        /edms-ops\.js backup --reason pre-fresh-start --earlier-generation --stack \S+$/,
      );
      expect(hook.inputs.triggers).to.deep.equal([2]);
      expect(hook.dependencies).to.include.members([
        "edms-data-backups",
        "edms-network-front",
        "edms-network-data",
      ]);
      expect(hook.dependencies).not.to.include("edms-postgres-container");
      // The new generation's volumes come after it: a failed backup leaves the earlier ones untouched
      // (a replacement begun before it would leave them "pending delete" for the next `pulumi up`).
      for (const role of ["postgres", "media", "redis"]) {
        expect(hook.dependencies).not.to.include(`edms-data-${role}`);
        expect(run.byName(`edms-data-${role}`).dependsOnOnly, role).to.include("freshStartBackup");
      }
      expect(run.byName("edms-data-backups").dependencies).not.to.include("freshStartBackup");
      expect(run.byName("edms-postgres-container").dependencies).to.include("freshStartBackup");
      expect(run.byName("edms-postgres-container").inputs.volumes[0].volumeName).to.match(
        /_postgres_data_g2$/,
      );
    });
  }

  it("production: no such hook", async function () {
    const run = await runProgram({ stack: "production" });
    expect(run.error).to.equal(undefined);
    expect(run.resources.map((r) => r.name)).not.to.include("freshStartBackup");
    expect(run.byName("edms-postgres-container").dependencies).not.to.include("freshStartBackup");
    expect(run.byName("edms-data-postgres").dependencies).to.deep.equal([]);
  });
});

describe("proxy takeover (a stack that ran without the proxy turns it on)", function () {
  this.timeout(60000);

  it("stops the old fixed-name web only after the new web and worker exist, and before the proxy takes the port", async function () {
    const run = await runProgram({ stack: "staging" });
    expect(run.error).to.equal(undefined);
    const hook = run.byName("proxyTakeover");
    expect(hook.inputs.create).to.match(
      /edms-ops\.js switch --take-over-port --wait 120 --stack staging$/,
    );
    const version = run.outputs.version;
    expect(hook.dependencies).to.include.members([
      `edms-web-${version}-container`,
      `edms-worker-container`,
    ]);
    expect(run.byName("edms-proxy-container").dependencies).to.include("proxyTakeover");
    expect(run.byName("proxySwitch").dependencies).to.include("edms-proxy-container");
  });

  it("edms:healthWaitSeconds is how long the takeover, switch and health hooks wait (120 s when left out)", async function () {
    const run = await runProgram({
      stack: "staging",
      overrides: { "edms:healthWaitSeconds": 300 },
    });
    expect(run.error).to.equal(undefined);
    expect(run.byName("proxyTakeover").inputs.create).to.match(
      / switch --take-over-port --wait 300 --stack staging$/,
    );
    expect(run.byName("proxySwitch").inputs.create).to.match(/ switch --wait 300 --stack staging$/);
    expect(run.byName("healthGate").inputs.create).to.match(/ health --wait 300 --stack staging$/);
    // Left out, it is absent from the settings the hooks and the scheduler are handed: nothing changes.
    const plain = await runProgram({ stack: "staging" });
    expect(plain.byName("healthGate").inputs.create).to.match(
      / health --wait 120 --stack staging$/,
    );
    expect(plain.byName("healthGate").inputs.environment.EDMS_SETTINGS_JSON).not.to.contain(
      "healthWaitSeconds",
    );
  });

  it("without the proxy: no takeover", async function () {
    const run = await runProgram({
      stack: "staging",
      overrides: { "edms:proxy": { enabled: false } },
    });
    expect(run.resources.map((r) => r.name)).not.to.include("proxyTakeover");
  });
});
