/**
 * The pre-deploy backup's id flows from hook to hook as Pulumi moves outputs: the backup hook's `stdout`
 * output becomes an input (argv) of the drill and the deployment record, so the engine runs them after it
 * and hands them exactly the backup it took.
 */
import { expect } from "chai";
import { HOOK_CONTRACTS, OPS_ENTRY } from "../../../model/hooks";
import { defaultNewResource, NewResource, runProgram } from "../../harness/mocks";

const ID = "2026-11-25T14-00-00Z-pre-deploy";

/** The recording mocks, with the backup hook printing what `edms-ops backup --print-id` prints. */
const backupPrints =
  (stdout: string): NewResource =>
  async (args) => {
    const result = await defaultNewResource(args);
    return args.name === HOOK_CONTRACTS.preDeployBackup.name
      ? { ...result, state: { ...result.state, stdout } }
      : result;
  };

describe("hooks built from the contract", function () {
  this.timeout(60000);

  it("production: the drill and the record are handed the id the backup hook printed", async function () {
    const run = await runProgram({
      stack: "production",
      newResource: backupPrints(`[  1.0s] progress goes to stderr\n${ID}`),
    });
    expect(run.error).to.equal(undefined);
    const version = String(run.outputs.version);
    const line = (argv: string[]) => `node ${OPS_ENTRY} ${argv.join(" ")} --stack production`;
    expect(run.byName("preDeployBackup").inputs.create).to.equal(
      line(HOOK_CONTRACTS.preDeployBackup.argv({ version })),
    );
    expect(run.byName("preDeployDrill").inputs.create).to.equal(
      line(["drill", "--backup-id", ID, "--reason", "pre-deploy"]),
    );
    expect(run.byName("recordDeployment").inputs.create).to.equal(
      line(["record-deployment", "--backup-id", ID]),
    );
    // Input edges: the engine orders them after the backup because they read its output.
    for (const name of ["preDeployDrill", "recordDeployment"]) {
      expect(run.byName(name).inputDependencies, name).to.include("preDeployBackup");
    }
    // The record still waits for the health gate by dependsOn alone, and runs once per release.
    expect(run.byName("recordDeployment").dependsOnOnly).to.deep.equal(["healthGate"]);
    expect(run.byName("recordDeployment").inputs.triggers[0]).to.equal(version);
  });

  it("a hook handed secrets keeps its output encrypted in the state; one without keeps it readable", async function () {
    const run = await runProgram({ stack: "production" });
    expect(run.error).to.equal(undefined);
    const hooks = run.ofType("command:local:Command");
    const withSecrets = hooks.filter((h) =>
      h.secretInputs.some((p) => p.startsWith("environment")),
    );
    expect(withSecrets.map((h) => h.name)).to.include.members([
      "backupInit",
      "migrate",
      "bootstrap",
    ]);
    for (const hook of hooks) {
      const expected = withSecrets.includes(hook) ? ["stdout", "stderr"] : [];
      expect(hook.additionalSecretOutputs, hook.name).to.deep.equal(expected);
    }
  });

  it("a backup that found nothing to back up hands on an empty id", async function () {
    const run = await runProgram({ stack: "production", newResource: backupPrints("") });
    expect(run.error).to.equal(undefined);
    expect(run.byName("preDeployDrill").inputs.create).to.contain(" drill --backup-id '' ");
    expect(run.byName("recordDeployment").inputs.create).to.contain(
      " record-deployment --backup-id '' ",
    );
  });

  it("staging: the record is handed the backup's id (no drill there)", async function () {
    const run = await runProgram({ stack: "staging", newResource: backupPrints(ID) });
    expect(run.error).to.equal(undefined);
    expect(run.resources.map((r) => r.name)).not.to.include("preDeployDrill");
    expect(run.byName("recordDeployment").inputs.create).to.contain(
      ` record-deployment --backup-id ${ID} --stack staging`,
    );
  });

  it("dev: no backup hook, so the record gets no --backup-id and depends on no backup", async function () {
    const run = await runProgram({ stack: "dev" });
    expect(run.error).to.equal(undefined);
    expect(run.resources.map((r) => r.name)).not.to.include("preDeployBackup");
    expect(run.byName("recordDeployment").inputs.create).to.equal(
      `node ${OPS_ENTRY} record-deployment --stack dev`,
    );
  });
});
