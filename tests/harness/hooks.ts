import { ensureCliBuilt } from "./build";
import { prepareEngine } from "./stack";

export const mochaHooks = {
  beforeAll(this: Mocha.Context) {
    this.timeout(1800_000);
    ensureCliBuilt();
    prepareEngine();
  },
};
