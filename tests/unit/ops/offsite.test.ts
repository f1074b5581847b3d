import { expect } from "chai";
import {
  describeOffsite,
  lockAdvice,
  OffsiteLag,
  offsiteNeedsAttention,
} from "../../../ops/store/offsite";
import { COPY_SCRIPT } from "../../../ops/store/offsiteCopy";

const lock = { time: "2026-12-01T10:00:00Z", exclusive: true, host: "old-host", pid: 42 };

describe("off-host copies: append-only, locks reported", function () {
  it("the copy never forgets, prunes or removes a lock off the host", function () {
    expect(COPY_SCRIPT).not.to.match(/\b(forget|prune|unlock)\b/);
    // The local repository is read without a lock: the stack lock's prune and check are never refused.
    expect(COPY_SCRIPT).to.match(/orestic --no-lock copy --from-repo/);
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
