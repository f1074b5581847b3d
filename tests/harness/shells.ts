/**
 * The shells the helper images run scripts in, for unit tests that run those scripts here: Debian's dash, and
 * busybox's ash with busybox's own applets as in the official restic image (when /bin/busybox is there;
 * .ci/run installs busybox-static). `tools` are the commands the scripts call, each linked to busybox in a
 * folder of its own under `root`, which is then the whole PATH. Debian's busybox-static runs its own applets
 * before anything on PATH (a standalone shell: `env PATH=/nonexistent busybox sh -c 'realpath /tmp'` works,
 * and its xargs runs applets too), so its sh tries busybox's tools however the PATH is set; the folder
 * keeps this machine's GNU tools out of reach should a build be without that feature.
 */
import * as fs from "fs";
import * as path from "path";

export function testShells(
  root: string,
  tools: readonly string[],
): { name: string; env: NodeJS.ProcessEnv }[] {
  const dash = { name: "dash", env: process.env };
  if (!fs.existsSync("/bin/busybox")) {
    return [dash];
  }
  const dir = path.join(root, "busybox");
  fs.mkdirSync(dir, { recursive: true });
  for (const tool of ["sh", ...tools]) {
    fs.symlinkSync("/bin/busybox", path.join(dir, tool));
  }
  return [dash, { name: "busybox", env: { ...process.env, PATH: dir } }];
}
