/**
 * The lock script, run by dash and by busybox's sh with busybox's own applets (the official restic image's
 * userland): once it holds the stack's flock it prints one line with the first line of the image's
 * `restic version`, from which the session refuses an image older than the minimum without an exec of its
 * own; a second holder is refused, naming the first.
 */
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LOCK_SCRIPT, startLockHolder } from "../../../ops/engine/lock";
import { LAYOUT } from "../../../ops/store/layout";
import { STAGE_DIR } from "../../../ops/store/restic";
import { testShells } from "../../harness/shells";

describe("the lock script names the restic its image runs once it holds the lock", function () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "lock-"));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  /**
   * Starts the script with its volume paths under `dir`, `restic` on the PATH first (printing `version`
   * and a second line, or nothing and failing when undefined, as when there is none).
   */
  function startIn(dir: string, shellPath: string | undefined, version?: string) {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(path.join(dir, "stage"), { recursive: true });
    fs.mkdirSync(bin, { recursive: true });
    const fake = version === undefined ? "exit 127" : `printf '%s\\nmore\\n' '${version}'`;
    fs.writeFileSync(path.join(bin, "restic"), `#!/bin/sh\n${fake}\n`, { mode: 0o755 });
    const script = LOCK_SCRIPT.split(LAYOUT.stackLock)
      .join(path.join(dir, ".stack-lock"))
      .split(LAYOUT.writerLock)
      .join(path.join(dir, ".writer-lock"))
      .split(STAGE_DIR)
      .join(path.join(dir, "stage"));
    // startLockHolder spawns with this process' environment: its PATH for that one call.
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${shellPath ?? saved}`;
    try {
      return startLockHolder("sh", ["-c", script, "edms-ops", "the test", ""]);
    } finally {
      process.env.PATH = saved;
    }
  }

  async function release(child: import("child_process").ChildProcessWithoutNullStreams) {
    const closed = new Promise((resolve) => child.once("close", resolve));
    child.stdin.end();
    await closed;
  }

  const shells = testShells(root, ["cat", "printf", "head", "rm", "sleep"]);
  // Debian's busybox-static has no flock applet (the official image's busybox has): util-linux's then.
  if (shells.length > 1 && fs.existsSync("/usr/bin/flock")) {
    fs.symlinkSync("/usr/bin/flock", path.join(root, "busybox", "flock"));
  }
  for (const shell of shells) {
    const shellPath = shell.name === "dash" ? undefined : shell.env.PATH;

    it(`${shell.name}: held, with restic's first line; a second holder is refused naming the first`, async function () {
      this.timeout(10000);
      const dir = fs.mkdtempSync(path.join(root, `${shell.name}-`));
      const version = "restic 0.16.4 compiled with go1.22 on linux/amd64";
      const first = await startIn(dir, shellPath, version);
      expect(first.child, first.stderr).to.not.equal(undefined);
      expect(first.restic).to.equal(version);
      const second = await startIn(dir, shellPath, version);
      expect(second.child).to.equal(undefined);
      expect(second.stderr).to.contain("edms-lock-held: the test");
      await release(first.child!);
    });

    it(`${shell.name}: an image without restic holds the lock with an empty line`, async function () {
      const dir = fs.mkdtempSync(path.join(root, `${shell.name}-none-`));
      const held = await startIn(dir, shellPath);
      expect(held.child, held.stderr).to.not.equal(undefined);
      expect(held.restic).to.equal("");
      await release(held.child!);
    });
  }
});
