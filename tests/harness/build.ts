/**
 * edms-ops runs from build/ (compiled by `npm run build`). Tests that start the real CLI build it first, so
 * they never run JavaScript older than the sources they sit beside; tsc's incremental build makes an
 * up-to-date tree cost about a second, the scheduler bundle (esbuild) about as much.
 */
import { execFileSync } from "child_process";
import * as path from "path";

const REPO_ROOT = path.resolve(__dirname, "../..");

/**
 * Builds once per run: a process that built sets EDMS_CLI_BUILT, for itself and for the processes it starts
 * (mocha's parallel workers, each Docker file's mocha), which would otherwise build too, two of them writing
 * build/ at once.
 */
export function ensureCliBuilt(): void {
  if (process.env.EDMS_CLI_BUILT === "1") {
    return;
  }
  execFileSync(
    process.execPath,
    [require.resolve("typescript/bin/tsc"), "-p", path.join(REPO_ROOT, "tsconfig.build.json")],
    { cwd: REPO_ROOT, stdio: "inherit" },
  );
  // The scheduler image's single-file bundle, as `npm run build` makes it.
  execFileSync(process.execPath, [path.join(REPO_ROOT, "scripts/bundle-scheduler.js")], {
    cwd: REPO_ROOT,
    stdio: "inherit",
  });
  process.env.EDMS_CLI_BUILT = "1";
}
