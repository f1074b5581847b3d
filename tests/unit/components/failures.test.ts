import { expect } from "chai";
import { defaultNewResource, runProgram } from "../../harness/mocks";

describe("the program when a hook fails", function () {
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
});
