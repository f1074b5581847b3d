import { ensureCliBuilt } from "../support/build";
import { prepareEngine } from "./support";

export const mochaHooks = {
  beforeAll(this: Mocha.Context) {
    this.timeout(1800_000);
    ensureCliBuilt();
    prepareEngine();
  },
};
