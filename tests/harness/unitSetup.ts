/**
 * The unit tier's global setup: mocha runs it once, in its main process, before any file (in parallel mode,
 * before its workers start), so the CLI is built once and every file that starts it finds it built, whichever
 * worker runs which file first.
 */
import { ensureCliBuilt } from "./build";

export function mochaGlobalSetup(): void {
  ensureCliBuilt();
}
