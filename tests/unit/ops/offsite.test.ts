import { expect } from "chai";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  describeOffsite,
  lockAdvice,
  OffsiteLag,
  offsiteNeedsAttention,
} from "../../../ops/store/offsite";
import { COPY_SCRIPT } from "../../../ops/store/offsiteCopy";
import { DELETE_OFFSITE, keysFromEnv } from "../../../ops/store/keys";
import { LAYOUT } from "../../../ops/store/layout";

/** The copy script's lock step alone, on a folder of its own, then what it found: run with sh. */
function lockStep(dir: string): string {
  const step = COPY_SCRIPT.slice(0, COPY_SCRIPT.indexOf("host=$1"))
    .split(LAYOUT.offsiteLock)
    .join(path.join(dir, "lock"))
    .split(LAYOUT.offsiteAgain)
    .join(path.join(dir, "again"));
  return `${step}\necho copying; [ ! -f ${dir}/again ] || echo asked-again`;
}

/** Holds the copy lock (as a running copy or a status probe would) for `seconds`. */
function holdLock(dir: string, seconds: number, shared = false) {
  const holder = spawn("flock", [
    ...(shared ? ["-s"] : []),
    path.join(dir, "lock"),
    "sleep",
    String(seconds),
  ]);
  return new Promise<void>((resolve) => holder.on("exit", () => resolve()));
}

const lock = { time: "2026-12-01T10:00:00Z", exclusive: true, host: "old-host", pid: 42 };

describe("off-host copies: append-only, locks reported", function () {
  it("the copy never forgets, prunes or removes a lock off the host", function () {
    expect(COPY_SCRIPT).not.to.match(/\b(forget|prune|unlock)\b/);
    // The local repository is read without a lock: the stack lock's prune and check are never refused.
    expect(COPY_SCRIPT).to.match(/orestic --no-lock copy --from-repo/);
  });

  it("a copy that waits blocks until the running one ends and asks it nothing; one in the background survives a probe and asks a running copy once", async function () {
    this.timeout(20000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-copy-lock-"));
    const script = lockStep(dir);
    const copy = (mode: string) =>
      spawnSync("sh", ["-euc", script, "edms-ops", "stack", "10", "no repo", mode], {
        encoding: "utf8",
      });
    try {
      fs.writeFileSync(path.join(dir, "lock"), "");
      // A running copy (2 s): the waiting one gets the lock after it, and leaves no `again` behind.
      let held = holdLock(dir, 2);
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      const waited = copy("wait");
      expect(waited.stdout.trim(), waited.stderr).to.equal("copying");
      expect(Date.now() - started).to.be.at.least(1500);
      await held;
      // A status probe's shared lock for a moment: the background copy retries and runs.
      held = holdLock(dir, 0.5, true);
      await new Promise((r) => setTimeout(r, 100));
      const background = copy("background");
      expect(background.stdout.trim(), background.stderr).to.equal("copying");
      await held;
      // A copy that keeps running: the background one asks it to go again and leaves (75).
      held = holdLock(dir, 3);
      await new Promise((r) => setTimeout(r, 200));
      const refused = copy("background");
      expect(refused.status).to.equal(75);
      expect(refused.stderr).to.contain("an off-host copy is running already");
      expect(fs.existsSync(path.join(dir, "again"))).to.equal(true);
      await held;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a lock restic judges stale gets plain unlock; a fresh one the checked --all", function () {
    expect(lockAdvice("prod", lock, 45, false)).to.contain(
      "`edms-ops backups unlock --offsite --stack prod`",
    );
    const fresh = lockAdvice("prod", lock, 3, false);
    expect(fresh).to.contain("`edms-ops backups unlock --offsite --all --stack prod`");
    expect(fresh).to.contain("once you checked that no other host");
    expect(lockAdvice("prod", { ...lock, exclusive: false }, 1, true)).to.contain(
      "this host's off-host copy (running now)",
    );
  });

  it("status and health show the last copy, the lag and each lock; health warns on a failure or a lock", function () {
    const base: OffsiteLag = {
      repository: "rest:http://h/prod/",
      reachable: true,
      count: 3,
      newest: "b3",
      missing: [],
      locks: [],
      lastCopy: {
        started: "2026-12-01T10:00:00Z",
        finished: "2026-12-01T10:01:00Z",
        ok: true,
        error: null,
        running: false,
      },
    };
    expect(describeOffsite("prod", base)).to.deep.equal([
      "off-host rest:http://h/prod/: 3 backup(s), newest b3, up to date; last copy 2026-12-01T10:01:00Z: ok",
    ]);
    expect(offsiteNeedsAttention(base)).to.equal(false);
    const failed: OffsiteLag = {
      ...base,
      missing: ["b4"],
      lastCopy: { ...base.lastCopy!, ok: false, error: "repository is already locked" },
      locks: [{ ...lock, minutes: 5, advice: lockAdvice("prod", lock, 5, false) }],
    };
    const lines = describeOffsite("prod", failed);
    expect(lines[0]).to.contain(
      "1 behind (b4); last copy 2026-12-01T10:01:00Z: FAILED: repository is already locked",
    );
    expect(lines[1]).to.match(
      /EXCLUSIVE lock of old-host \(pid 42\), 5 min old: .*--all --stack prod/,
    );
    expect(offsiteNeedsAttention(failed)).to.equal(true);
    expect(offsiteNeedsAttention({ ...base, reachable: false, problem: "x" })).to.equal(true);
  });
});

describe("off-host credentials that may delete: variables of their own", function () {
  const env = {
    EDMS_RESTIC_PASSWORD: "pw",
    EDMS_OFFSITE_REPOSITORY: "rest:http://append-only/",
    EDMS_OFFSITE_ENV: '{"A": "1"}',
    EDMS_OFFSITE_DELETE_REPOSITORY: "rest:http://may-delete/",
    EDMS_OFFSITE_DELETE_ENV: '{"A": "2"}',
  };

  it("what a command stores on the host are the append-only ones, never the delete ones", function () {
    expect(keysFromEnv(env)).to.deep.equal({
      password: "pw",
      offsiteRepository: "rest:http://append-only/",
      offsiteEnv: { A: "1" },
    });
    expect(keysFromEnv(env, DELETE_OFFSITE)).to.deep.equal({
      password: "pw",
      offsiteRepository: "rest:http://may-delete/",
      offsiteEnv: { A: "2" },
    });
    // Only the append-only names given: prune and forget --offsite have no delete credentials.
    expect(keysFromEnv({ ...env, EDMS_OFFSITE_DELETE_REPOSITORY: "" }, DELETE_OFFSITE)).to.include({
      offsiteRepository: undefined,
    });
  });

  it("an rclone remote with connection-string parameters is refused by its own name, before anything is stored (its value arrives secret)", function () {
    for (const [repository, refused] of [
      ["rclone::s3,access_key_id=AK,secret_access_key=SK:bucket/edms", true],
      ["rclone:remote,pass = x:path", true],
      ["rclone::local:/srv/edms", false],
      ["rclone:remote:bucket/a,b", false],
      ["rclone:remote:bucket/2024,v=1", false],
      ["s3:host/b,key=v", false],
    ] as const) {
      const call = () => keysFromEnv({ ...env, EDMS_OFFSITE_REPOSITORY: repository });
      if (refused) {
        expect(call, repository).to.throw(
          /^offsite\.repository is an rclone remote with connection-string parameters .* \(EDMS_OFFSITE_REPOSITORY\)\. Nothing was stored or changed\./,
        );
      } else {
        expect(call(), repository).to.include({ offsiteRepository: repository });
      }
    }
  });

  it("a malformed variable is refused by its own name", function () {
    expect(() =>
      keysFromEnv({ ...env, EDMS_OFFSITE_DELETE_ENV: "not json" }, DELETE_OFFSITE),
    ).to.throw(/^EDMS_OFFSITE_DELETE_ENV is not a JSON object/);
  });
});
