/**
 * The lock script, run by dash and by busybox's sh with busybox's own applets (the official restic image's
 * userland): once it holds the stack's flock it prints one line with the first line of the image's
 * `restic version`, from which the session refuses an image older than the minimum without an exec of its
 * own; a restic that is missing or hangs gives an empty line within 10 s, never the holder's stdin; a second
 * holder is refused, naming the first.
 */
import { expect } from "chai";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadSettings } from "../../../ops/core/stack";
import { LOCK_SCRIPT, startLockHolder } from "../../../ops/engine/lock";
import { resticRefusal } from "../../../ops/engine/session";
import { LAYOUT } from "../../../ops/store/layout";
import { STAGE_DIR } from "../../../ops/store/restic";
import { REPO_ROOT } from "../../harness/mocks";
import { testShells } from "../../harness/shells";

describe("the lock script names the restic its image runs once it holds the lock", function () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "lock-"));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  /** Holders a failed assertion left running. */
  const started: ChildProcessWithoutNullStreams[] = [];
  afterEach(() => started.splice(0).forEach((child) => child.kill("SIGKILL")));

  /**
   * Starts the script with its volume paths under `dir` and `restic` first on the PATH, a script of `fake`
   * (none when undefined: neither this machine nor busybox has a restic).
   */
  async function startIn(dir: string, shellPath: string | undefined, fake?: string) {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(path.join(dir, "stage"), { recursive: true });
    fs.mkdirSync(bin, { recursive: true });
    if (fake !== undefined) {
      fs.writeFileSync(path.join(bin, "restic"), `#!/bin/sh\n${fake}\n`, { mode: 0o755 });
    }
    const script = LOCK_SCRIPT.split(LAYOUT.stackLock)
      .join(path.join(dir, ".stack-lock"))
      .split(LAYOUT.writerLock)
      .join(path.join(dir, ".writer-lock"))
      .split(STAGE_DIR)
      .join(path.join(dir, "stage"));
    // startLockHolder spawns with this process' environment: its PATH for that one call. Without a fake,
    // none on the PATH at all: the host's tools linked one by one (busybox: its own folder).
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${shellPath ?? hostTools(dir)}`;
    let attempt;
    try {
      attempt = startLockHolder("sh", ["-c", script, "edms-ops", "the test", ""]);
    } finally {
      process.env.PATH = saved;
    }
    const held = await attempt;
    if (held.child) {
      started.push(held.child);
    }
    return held;
  }

  /** A folder with the host's tools the script calls and no restic, whatever this machine has. */
  function hostTools(dir: string): string {
    const tools = path.join(dir, "host");
    fs.mkdirSync(tools, { recursive: true });
    for (const tool of ["sh", "flock", "cat", "printf", "head", "rm", "sleep", "timeout"]) {
      const found = ["/usr/bin", "/bin"]
        .map((d) => path.join(d, tool))
        .find((f) => fs.existsSync(f));
      if (found && !fs.existsSync(path.join(tools, tool))) {
        fs.symlinkSync(found, path.join(tools, tool));
      }
    }
    return tools;
  }

  async function release(child: ChildProcessWithoutNullStreams) {
    const closed = new Promise((resolve) => child.once("close", resolve));
    child.stdin.end();
    await closed;
  }

  const shells = testShells(root, ["cat", "printf", "head", "rm", "sleep", "timeout"]);
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
      // The holder's stdin is not restic's to read (it would never end), nor is a second line the session's.
      const fake = `cat >/dev/null; printf '%s\\nmore\\n' '${version}'`;
      const first = await startIn(dir, shellPath, fake);
      expect(first.child, first.stderr).to.not.equal(undefined);
      expect(first.restic).to.equal(version);
      const second = await startIn(dir, shellPath, "echo restic 0.18.0");
      expect(second.child).to.equal(undefined);
      expect(second.stderr).to.contain("edms-lock-held: the test");
      await release(first.child!);
    });

    it(`${shell.name}: the stage folder is flocked while the lock is held, and free once its holder ends`, async function () {
      const dir = fs.mkdtempSync(path.join(root, `${shell.name}-stage-`));
      const stage = path.join(dir, "stage");
      const probe = () => spawnSync("flock", ["-n", "-s", stage, "true"]).status;
      const held = await startIn(dir, shellPath);
      expect(held.child, held.stderr).to.not.equal(undefined);
      expect(probe(), "a dump client's probe while the lock is held").to.equal(1);
      await release(held.child!);
      expect(probe(), "once the holder has ended").to.equal(0);
    });

    it(`${shell.name}: the stack's lock is free the moment its holder ends, however short its hold`, async function () {
      const dir = fs.mkdtempSync(path.join(root, `${shell.name}-short-`));
      // A restic that answers at once: busybox's timeout leaves a watcher behind for up to a second.
      const held = await startIn(dir, shellPath, "echo restic 0.18.0");
      expect(held.child, held.stderr).to.not.equal(undefined);
      await release(held.child!);
      const probe = spawnSync("flock", ["-n", "-s", path.join(dir, ".stack-lock"), "true"]);
      expect(probe.status, "the stack lock right after its holder's end").to.equal(0);
    });

    it(`${shell.name}: a stage folder someone else keeps locked is a refusal, not a lock without it`, async function () {
      this.timeout(10000);
      const dir = fs.mkdtempSync(path.join(root, `${shell.name}-staged-`));
      fs.mkdirSync(path.join(dir, "stage"), { recursive: true });
      const other = spawn("flock", [path.join(dir, "stage"), "sleep", "5"]);
      try {
        await new Promise((r) => setTimeout(r, 200));
        const held = await startIn(dir, shellPath);
        expect(held.child).to.equal(undefined);
        expect(held.stderr).to.contain(
          "edms-lock-held: a dump client of a stopped edms-ops operation",
        );
      } finally {
        other.kill("SIGKILL");
      }
    });

    it(`${shell.name}: an image without restic holds the lock with an empty line`, async function () {
      const dir = fs.mkdtempSync(path.join(root, `${shell.name}-none-`));
      const held = await startIn(dir, shellPath);
      expect(held.child, held.stderr).to.not.equal(undefined);
      expect(held.restic).to.equal("");
      await release(held.child!);
    });
  }

  it(`a restic that hangs: the lock is held with an empty line within 10 s (${shells.map((s) => s.name).join(" and ")} at once)`, async function () {
    this.timeout(30000);
    await Promise.all(
      shells.map(async (shell) => {
        const dir = fs.mkdtempSync(path.join(root, `${shell.name}-hangs-`));
        const shellPath = shell.name === "dash" ? undefined : shell.env.PATH;
        const held = await startIn(dir, shellPath, "exec sleep 60");
        expect(held.child, held.stderr).to.not.equal(undefined);
        expect(held.restic, shell.name).to.equal("");
        await release(held.child!);
      }),
    );
  });

  it("a line split across reads is read whole", async function () {
    const held = await startLockHolder("sh", [
      "-c",
      "printf 'held: res'; sleep 0.3; printf 'tic 0.18.0\\n'; cat >/dev/null",
    ]);
    expect(held.child, held.stderr).to.not.equal(undefined);
    started.push(held.child!);
    expect(held.restic).to.equal("restic 0.18.0");
    await release(held.child!);
  });

  it("the session refuses no restic, an old one and an unreadable answer, naming the image and the key", function () {
    const settings = loadSettings({ stack: "dev", projectDir: REPO_ROOT });
    expect(resticRefusal(settings, "restic 0.17.3 compiled with go1.23.3 on linux/amd64")).to.equal(
      null,
    );
    expect(resticRefusal(settings, "restic 0.18.0 compiled with go1.24 on linux/amd64")).to.equal(
      null,
    );
    for (const [found, says] of [
      ["", /runs no restic, or one whose `restic version` gave no answer/],
      ["restic 0.16.4 compiled with go1.22", /runs restic 0\.16; edms-ops needs restic 0\.17/],
      ["Welcome to the backup image", /cannot read \("Welcome to the backup image"\)/],
    ] as const) {
      const refusal = resticRefusal(settings, found);
      expect(refusal?.message).to.match(says);
      expect(refusal?.message).to.contain("`edms:backup.image`").and.contain("Nothing was changed");
      expect(refusal?.fix).to.contain("pulumi up --stack dev");
    }
  });
});
