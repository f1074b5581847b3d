import { expect } from "chai";
import { spawn } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Readable } from "stream";
import { validateSettings } from "../../../model/settings";
import * as dockerLib from "../../../ops/engine/docker";
import { CLIENT_SCRIPT, dumpWithClient } from "../../../ops/backup/dump";
import { lockContainerArgs } from "../../../ops/engine/lock";
import { NO_SPACE } from "../../../ops/store/restic";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const HASH = "ab".repeat(32);

/** The values `args` gives the flag `name`. */
const flagValues = (args: string[], name: string) => args.filter((_, i) => args[i - 1] === name);

describe("the backup's dump: a client container writing straight into the session's stage volume", function () {
  const settings = validateSettings("staging", { environment: "staging", version: "1.0.0" });
  const saved = dockerLib.docker;
  let calls: { args: string[]; input?: unknown }[] = [];
  let answers: Record<string, dockerLib.RunResult> = {};

  beforeEach(() => {
    calls = [];
    answers = {
      exec: { code: 0, stdout: "pa:ss\\word\n", stderr: "" },
      container: {
        code: 0,
        stdout: JSON.stringify([
          {
            Id: "c",
            Name: "/pg",
            Created: "2026-12-01T00:00:00Z",
            Image: "sha256:0123",
            State: { Running: true, Status: "running" },
            Config: { Labels: {} },
          },
        ]),
        stderr: "",
      },
      run: { code: 0, stdout: `${HASH}  /edms/database/db.dump\n119212670\n`, stderr: "" },
    };
    (dockerLib as Mutable<typeof dockerLib>).docker = (async (
      args: readonly string[],
      options?: dockerLib.RunOptions,
    ) => {
      // What the client reads first (its stdin stays open until it ends).
      const input = options?.input;
      if (input instanceof Readable) {
        // Until the snapshot's line (or stdin's end, when no snapshot could be taken).
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      calls.push({
        args: [...args],
        input: input instanceof Readable ? String(input.read()) : input,
      });
      return answers[args[0]];
    }) as typeof dockerLib.docker;
  });
  afterEach(() => {
    (dockerLib as Mutable<typeof dockerLib>).docker = saved;
  });

  /**
   * A client that runs until its stdin ends, as the real one does when told to stop: `started` gets its stdin,
   * `ended` runs once that ended, and it exits with `code`.
   */
  function clientUntilStdinEnds(
    code: number,
    started: (input: Readable) => void,
    ended: () => Promise<void> = async () => undefined,
  ): void {
    (dockerLib as Mutable<typeof dockerLib>).docker = (async (
      args: readonly string[],
      options?: dockerLib.RunOptions,
    ) => {
      if (args[0] !== "run") {
        return answers[args[0]];
      }
      const input = options?.input as Readable;
      started(input);
      await new Promise((resolve) => input.once("end", resolve));
      await ended();
      return { code, stdout: "", stderr: "" };
    }) as typeof dockerLib.docker;
  }

  it("hands the superuser's password over on stdin only, escaped for pgpass; reaches the server on its own loopback, in its network namespace", async function () {
    const dump = await dumpWithClient(settings, "00000003-0000001B-1");
    expect(dump).to.deep.equal({ file: "db.dump", bytes: 119212670, sha256: HASH });
    const [read, inspect, run] = calls;
    expect(inspect.args).to.deep.equal(["container", "inspect", settings.names.postgresContainer]);
    // The running server's image, whatever the configuration now says.
    expect(run.args).to.include("sha256:0123");
    expect(read.args).to.deep.equal([
      "exec",
      settings.names.postgresContainer,
      "cat",
      "/run/secrets/postgres_password",
    ]);
    // The pgpass line, then the snapshot once it was taken.
    expect(run.input).to.equal("*:*:*:edms:pa\\:ss\\\\word\n00000003-0000001B-1\n");
    expect(run.args.join(" ")).not.to.contain("pa:ss");
    const flag = (name: string) => flagValues(run.args, name);
    // The server's namespace: no network of its own to set up, and nothing the server itself cannot reach.
    expect(flag("--network")).to.deep.equal([`container:${settings.names.postgresContainer}`]);
    // Only the stage: neither the backups volume (the repository's keys) nor the media.
    expect(flag("-v")).to.deep.equal([`${settings.namePrefix}_ops_stage:/edms/database`]);
    expect(flag("--label")).to.include("edms.role=ops-helper");
    expect(flag("--log-driver")).to.deep.equal(["none"]);
    expect(run.args).to.include("--read-only");
    expect(flag("-e"), "nothing in the container's environment").to.deep.equal([]);
    // The server is the script's arguments, never spliced into it; the snapshot comes on stdin.
    expect(run.args.slice(-5)).to.deep.equal(["edms-ops", "127.0.0.1", "5432", "edms", "edms"]);
    const script = run.args[run.args.length - 6];
    expect(script).to.match(/^umask 077\n/);
    expect(script).to.match(/\nIFS= read -r pass\n/);
    // edms-ops gone (stdin closed): the dump is stopped and its file removed.
    expect(script).to.contain('exec 3<&0; { cat <&3 >/dev/null; kill "$dump"');
    expect(script).to.contain(
      '-d "$4" -Fc -Z0 --no-sync --snapshot="$snapshot" -f /edms/database/db.dump',
    );
    expect(script).to.contain("PGAPPNAME=edms-ops-dump");
  });

  it("an external server is reached over its network by its host; no flag the server's namespace refuses", async function () {
    const external = validateSettings("staging", {
      environment: "staging",
      version: "1.0.0",
      database: {
        host: "db.example.com",
        user: "edms_admin",
        password: { secure: "v1:abc" },
        caCertificateFile: "certs/db-ca.pem",
      },
    });
    await dumpWithClient(external, "s");
    const run = calls.find((c) => c.args[0] === "run")!;
    expect(flagValues(run.args, "--network")).to.deep.equal([external.names.databaseNetwork]);
    expect(run.args.slice(-4)).to.deep.equal(["db.example.com", "5432", "edms_admin", "edms"]);
    // Docker refuses these beside `--network container:…`: the own server's client must never carry them.
    await dumpWithClient(settings, "s");
    const own = calls.filter((c) => c.args[0] === "run").pop()!;
    for (const refused of ["--hostname", "--dns", "--add-host", "-p", "--publish", "--expose"]) {
      expect(own.args, refused).not.to.include(refused);
    }
    const refusedPrefix = own.args.filter((a) => /^--(mac-address|network-alias)/.test(a));
    expect(refusedPrefix).to.deep.equal([]);
  });

  it("a dump that fails says why (a full disk is recognised as one); the password never appears", async function () {
    answers.run = {
      code: 1,
      stdout: "",
      stderr: "pg_dump: error: could not write to output file: No space left on device\n",
    };
    const err = await dumpWithClient(settings, "s").then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/^database dump failed: pg_dump: error: could not write/);
    expect(NO_SPACE.test(err?.message ?? "")).to.equal(true);
    expect(err?.message).not.to.contain("pa:ss");
  });

  it("no checksum printed is a failed dump, never a manifest with an empty hash", async function () {
    answers.run = { code: 0, stdout: "\n", stderr: "" };
    const err = await dumpWithClient(settings, "s").then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/printed no checksum/);
  });

  it("a backup that failed elsewhere first: no client starts; while one runs: its stdin ends (it removes its dump)", async function () {
    const stop = new AbortController();
    stop.abort();
    const early = await dumpWithClient(settings, "s", stop.signal).then(
      () => null,
      (e: Error) => e,
    );
    expect(early?.message).to.match(/stopped before it began/);
    expect(calls.map((c) => c.args[0])).not.to.include("run");
    const running = new AbortController();
    clientUntilStdinEnds(143, (input) => {
      input.resume();
      setTimeout(() => running.abort(), 20);
    });
    const stopped = await dumpWithClient(settings, "s", running.signal).then(
      () => null,
      (e: Error) => e,
    );
    expect(stopped?.message).to.match(/^database dump failed/);
  });

  it("no snapshot could be taken: the client gets no second line and ends; the snapshot's own error is the dump's", async function () {
    const err = await dumpWithClient(
      settings,
      Promise.reject(new Error("psql session ended (exit 2): the server is gone")),
    ).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.equal("psql session ended (exit 2): the server is gone");
    const run = calls.find((c) => c.args[0] === "run")!;
    expect(run.input, "the pgpass line only").to.equal("*:*:*:edms:pa\\:ss\\\\word\n");
  });

  it("a snapshot taken after the backup was stopped is never sent: the client already ended", async function () {
    const stop = new AbortController();
    let take!: (snapshot: string) => void;
    const snapshot = new Promise<string>((resolve) => (take = resolve));
    let sent = "";
    clientUntilStdinEnds(
      1,
      (input) => {
        input.on("data", (d: Buffer) => (sent += d.toString()));
        stop.abort();
      },
      async () => {
        take("00000003-0000001B-1");
        await new Promise((resolve) => setTimeout(resolve, 20));
      },
    );
    const err = await dumpWithClient(settings, snapshot, stop.signal).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/^database dump failed/);
    expect(sent).to.equal("*:*:*:edms:pa\\:ss\\\\word\n");
  });

  it("an unreadable password file is refused naming it, before any client starts", async function () {
    answers.exec = {
      code: 1,
      stdout: "",
      stderr: "cat: /run/secrets/postgres_password: No such file\n",
    };
    const err = await dumpWithClient(settings, "s").then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/superuser's password file \/run\/secrets\/postgres_password/);
    expect(calls.map((c) => c.args[0])).to.deep.equal(["exec"]);
  });

  it("the lock container mounts the stage as a labelled named volume, so a killed run's is found", function () {
    const argv = lockContainerArgs(settings, "backup", true);
    expect(argv).to.include(
      `type=volume,src=${settings.namePrefix}_ops_stage,dst=/edms/database` +
        `,volume-label=edms.stack=staging,volume-label=edms.role=ops-stage`,
    );
    expect(argv).not.to.include("/edms/database");
  });
});

describe("the dump client's script, run by a real shell with a stand-in pg_dump", function () {
  this.timeout(20_000);
  const shells = [["sh"], ...(fs.existsSync("/bin/busybox") ? [["/bin/busybox", "sh"]] : [])];
  let dir: string;
  let stage: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-dump-client-"));
    stage = path.join(dir, "stage");
    fs.mkdirSync(stage);
    fs.mkdirSync(path.join(dir, "bin"));
    // Writes part of the dump and its pid, then finishes (FINISH) or keeps writing until killed.
    fs.writeFileSync(
      path.join(dir, "bin", "pg_dump"),
      `#!/bin/sh\necho $$ > "${dir}/pid"\nfor a; do out=$a; done\nprintf partial > "$out"\n[ -z "$FINISH" ] || exit 0\nexec sleep 30\n`,
      { mode: 0o755 },
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /**
   * Runs the script as its container would: after its lock container has flocked the stage (unless
   * `holder` is false: one already gone), stdin open. In a process group of its own, as its watcher outlives
   * the shell outside a container.
   */
  async function start(
    shell: string[],
    env: Record<string, string> = {},
    snapshot: string | null = "snap",
    holder = true,
  ) {
    const held = holder ? await holdStage() : undefined;
    const script = CLIENT_SCRIPT.replace(/\/edms\/database/g, stage).replace(
      /\/tmp\/pgpass/g,
      `${dir}/pgpass`,
    );
    const child = spawn(
      shell[0],
      [...shell.slice(1), "-euc", script, "edms-ops", "pg", "5432", "edms", "edms"],
      {
        env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, ...env },
        detached: true,
      },
    );
    groups.push(child.pid!);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const ended = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
    child.stdin.write("*:*:*:edms:secret\n");
    if (snapshot) {
      child.stdin.write(`${snapshot}\n`);
    }
    return { child, ended, stdout: () => stdout, stderr: () => stderr, holder: held };
  }
  const groups: number[] = [];
  afterEach(() =>
    groups.splice(0).forEach((pid) => {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // gone already
      }
    }),
  );

  /** The lock container's hold on the stage folder (lock.ts's LOCK_SCRIPT), in a process of its own. */
  async function holdStage() {
    const child = spawn("sh", ["-c", 'exec 7<"$1"; flock 7; echo held; exec sleep 60', "h", stage]);
    holders.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("close", () =>
        reject(new Error("the stand-in holder never took the stage's flock")),
      );
    });
    return child;
  }
  const holders: ReturnType<typeof spawn>[] = [];
  afterEach(() => holders.splice(0).forEach((h) => h.kill("SIGKILL")));

  /** Running: neither gone nor a zombie. */
  function alive(pid: number): boolean {
    try {
      return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return false;
    }
  }

  /** The stand-in pg_dump is stopped: killed, it may wait a moment as a zombie for a parent that has gone. */
  async function stoppedStandIn() {
    const pid = Number(fs.readFileSync(`${dir}/pid`, "utf8"));
    for (let i = 0; i < 20 && alive(pid); i += 1) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(alive(pid), "pg_dump still running").to.equal(false);
  }

  async function standInStarted() {
    for (let i = 0; i < 100 && !fs.existsSync(`${stage}/db.dump`); i += 1) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(fs.existsSync(`${stage}/db.dump`), "the stand-in started").to.equal(true);
  }

  for (const shell of shells) {
    it(`${shell.join(" ")}: prints the dump's sha256 and size, and leaves no pgpass behind`, async function () {
      const { child, ended, stdout } = await start(shell, { FINISH: "1" });
      const code = await ended;
      child.stdin.end();
      expect(code).to.equal(0);
      const sha = createHash("sha256").update("partial").digest("hex");
      // sha256sum's `<hex>  <name>`, or OpenSSL's `<hex> *<name>` where the host has openssl.
      expect([`${sha}  ${stage}/db.dump\n7\n`, `${sha} *${stage}/db.dump\n7\n`]).to.include(
        stdout(),
      );
      expect(fs.existsSync(`${dir}/pgpass`)).to.equal(false);
      // The watcher wakes when stdin closes after the end: the complete dump is not its to remove.
      await new Promise((r) => setTimeout(r, 300));
      expect(fs.readFileSync(`${stage}/db.dump`, "utf8")).to.equal("partial");
    });

    it(`${shell.join(" ")}: stdin ending before the snapshot's line (none could be taken) starts no dump`, async function () {
      const { child, ended } = await start(shell, { FINISH: "1" }, null);
      await new Promise((r) => setTimeout(r, 200));
      expect(fs.existsSync(`${dir}/pid`), "pg_dump waits for the snapshot").to.equal(false);
      child.stdin.end();
      expect(await ended).not.to.equal(0);
      expect(fs.existsSync(`${dir}/pid`)).to.equal(false);
      expect(fs.readdirSync(stage)).to.deep.equal([]);
    });

    it(`${shell.join(" ")}: pg_dump is given the snapshot from stdin, quoted`, async function () {
      fs.writeFileSync(
        path.join(dir, "bin", "pg_dump"),
        `#!/bin/sh\nfor a; do case $a in --snapshot=*) printf '%s' "$a" > "${dir}/snapshot";; esac; out=$a; done\nprintf x > "$out"\n`,
        { mode: 0o755 },
      );
      const { child, ended } = await start(shell, {}, "0000-$(id) *");
      expect(await ended).to.equal(0);
      child.stdin.end();
      expect(fs.readFileSync(`${dir}/snapshot`, "utf8")).to.equal("--snapshot=0000-$(id) *");
    });

    it(`${shell.join(" ")}: a dump that fails is removed, its exit status kept`, async function () {
      fs.writeFileSync(
        path.join(dir, "bin", "pg_dump"),
        `#!/bin/sh\nfor a; do out=$a; done\nprintf partial > "$out"\necho "pg_dump: error: boom" >&2\nexit 5\n`,
        { mode: 0o755 },
      );
      const { child, ended } = await start(shell);
      expect(await ended).to.equal(5);
      child.stdin.end();
      expect(fs.existsSync(`${stage}/db.dump`)).to.equal(false);
    });

    it(`${shell.join(" ")}: the lock's holder gone mid-dump, its stdin still open: pg_dump stopped, the partial dump removed`, async function () {
      const { child, ended, stderr, holder } = await start(shell);
      await standInStarted();
      holder!.kill("SIGKILL");
      expect(await ended).to.equal(143);
      expect(stderr()).to.contain("lock container of this operation has gone");
      expect(fs.existsSync(`${stage}/db.dump`)).to.equal(false);
      await stoppedStandIn();
      child.stdin.end();
    });

    it(`${shell.join(" ")}: the lock's holder gone before the snapshot came: no dump starts, the client ends`, async function () {
      const { child, ended, holder } = await start(shell, {}, null);
      await new Promise((r) => setTimeout(r, 200));
      holder!.kill("SIGKILL");
      expect(await ended).to.equal(143);
      expect(fs.existsSync(`${dir}/pid`)).to.equal(false);
      child.stdin.end();
    });

    it(`${shell.join(" ")}: a client that starts once its holder has gone ends at once, leaving nothing it began`, async function () {
      const { child, ended } = await start(shell, {}, "snap", false);
      expect(await ended).to.equal(143);
      expect(fs.readdirSync(stage)).to.deep.equal([]);
      if (fs.existsSync(`${dir}/pid`)) {
        await stoppedStandIn();
      }
      child.stdin.end();
    });

    it(`${shell.join(" ")}: stdin closed mid-dump (edms-ops killed) stops pg_dump and removes the partial dump`, async function () {
      const { child, ended } = await start(shell);
      await standInStarted();
      child.stdin.end();
      expect(await ended).not.to.equal(0);
      expect(fs.existsSync(`${stage}/db.dump`)).to.equal(false);
      const pid = Number(fs.readFileSync(`${dir}/pid`, "utf8"));
      expect(() => process.kill(pid, 0), "pg_dump still running").to.throw();
    });
  }
});
