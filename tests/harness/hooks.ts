import { ensureCliBuilt } from "./build";
import { prepareEngine } from "./stack";

export const mochaHooks = {
  beforeAll(this: Mocha.Context) {
    this.timeout(1800_000);
    // tests/harness/parallel.ts did both once before it started this file beside others.
    if (process.env.EDMS_TEST_PREPARED) {
      return;
    }
    ensureCliBuilt();
    prepareEngine();
  },
};
