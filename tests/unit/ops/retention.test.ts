import { expect } from "chai";
import { BackupEntry } from "../../../ops/store/restic";
import {
  isFutureDated,
  isoWeek,
  notFutureDated,
  retention,
  rollbackReleases,
  supersedingDeploy,
} from "../../../ops/store/retention";

let minute = 0;
/** A backup taken one minute after the previous one (host clock). */
function backup(reason: string, extra: Partial<BackupEntry> = {}): BackupEntry {
  minute += 1;
  const time = new Date(Date.UTC(2026, 10, 27, 10, minute)).toISOString();
  return {
    id: `${time.slice(0, 19).replace(/:/g, "-")}Z-${reason}`,
    snapshot: `snap${minute}`,
    time,
    reason,
    release: "1.0.0",
    stack: "s",
    paths: ["/edms/database", "/edms/media"],
    ...extra,
  };
}

const ids = (entries: { id: string }[]) => entries.map((e) => e.id);

describe("retention policy", function () {
  it("keeps the newest `keep` by snapshot time, whatever order they are listed in", function () {
    const all = [backup("a"), backup("b"), backup("c"), backup("d")];
    const decision = retention({
      backups: [...all].reverse(),
      keep: 2,
      rollbackReleases: [],
      pinned: [],
    });
    expect(ids(decision.keep.map((k) => k.entry))).to.deep.equal(ids([all[3], all[2]]));
    expect(ids(decision.forget)).to.deep.equal(ids([all[1], all[0]]));
  });

  it("orders by the host's snapshot time, not by the id an operator's clock could have skewed", function () {
    const older = backup("x", { id: "2030-01-01T00-00-00Z-skewed" });
    const newer = backup("y");
    const decision = retention({
      backups: [older, newer],
      keep: 1,
      rollbackReleases: [],
      pinned: [],
    });
    expect(ids(decision.forget)).to.deep.equal([older.id]);
  });

  it("always keeps the pre-deploy backups of the running and the previous release (rollback targets)", function () {
    const toV1 = backup("pre-deploy", { release: null, target: "1.0.0" });
    const toV2 = backup("pre-deploy", { release: "1.0.0", target: "2.0.0" });
    const toV3 = backup("pre-deploy", { release: "2.0.0", target: "3.0.0" });
    const manual = [backup("m1"), backup("m2"), backup("m3")];
    const decision = retention({
      backups: [toV1, toV2, toV3, ...manual],
      keep: 2,
      rollbackReleases: ["3.0.0", "2.0.0"],
      pinned: [],
    });
    expect(ids(decision.forget)).to.deep.equal(ids([manual[0], toV1]));
    const why = Object.fromEntries(decision.keep.map((k) => [k.entry.id, k.why]));
    expect(why[toV3.id]).to.equal("rollback target (pre-deploy backup of 3.0.0)");
    expect(why[toV2.id]).to.equal("rollback target (pre-deploy backup of 2.0.0)");
  });

  it("keeps the newest pre-deploy backup taken after the last recorded deploy: a deploy in progress, or one that failed before its record", function () {
    const failedEarlier = backup("pre-deploy", { release: "0.9.0", target: "1.5.0" });
    const deployedV1 = backup("manual");
    const inProgress = backup("pre-deploy", { release: "1.0.0", target: "2.0.0" });
    const scheduled = [backup("scheduled"), backup("scheduled")];
    const decision = retention({
      backups: [failedEarlier, deployedV1, inProgress, ...scheduled],
      keep: 1,
      // The scheduler's view: 1.0.0 is the last recorded release; 2.0.0 is no rollback target yet.
      rollbackReleases: ["1.0.0"],
      pinned: [],
      lastDeploy: deployedV1.time,
    });
    const why = Object.fromEntries(decision.keep.map((k) => [k.entry.id, k.why]));
    expect(why[inProgress.id]).to.equal(
      "pre-deploy backup of a deploy not recorded yet (of 2.0.0)",
    );
    expect(ids(decision.forget)).to.deep.equal(ids([scheduled[0], deployedV1, failedEarlier]));
    // Once 2.0.0 is recorded after it, it is kept as 2.0.0's rollback target, and only then.
    const recorded = retention({
      backups: [failedEarlier, deployedV1, inProgress, ...scheduled],
      keep: 1,
      rollbackReleases: [],
      pinned: [],
      lastDeploy: scheduled[1].time,
    });
    expect(ids(recorded.forget)).to.include(inProgress.id);
    // An imported pre-deploy backup (another stack's, its own time) is not the deploy in progress.
    const imported = backup("pre-deploy", { target: "9.9.9", imported: true });
    const withImport = retention({
      backups: [deployedV1, inProgress, imported, ...scheduled],
      keep: 1,
      rollbackReleases: ["1.0.0"],
      pinned: [],
      lastDeploy: deployedV1.time,
    });
    const kept = Object.fromEntries(withImport.keep.map((k) => [k.entry.id, k.why]));
    expect(kept[inProgress.id]).to.equal(
      "pre-deploy backup of a deploy not recorded yet (of 2.0.0)",
    );
  });

  it("never forgets a backup an operation in progress uses (the restore of the oldest at the limit)", function () {
    const oldest = backup("oldest");
    const rest = [backup("b"), backup("pre-restore")];
    const decision = retention({
      backups: [oldest, ...rest],
      keep: 2,
      rollbackReleases: [],
      pinned: [oldest.id],
    });
    expect(decision.forget).to.deep.equal([]);
    expect(decision.keep.find((k) => k.entry.id === oldest.id)?.why).to.equal(
      "in use by this operation",
    );
  });

  it("keep 1 with nothing else to protect forgets everything but the newest", function () {
    const all = [backup("a"), backup("b"), backup("c")];
    expect(
      ids(retention({ backups: all, keep: 1, rollbackReleases: [], pinned: [] }).forget),
    ).to.have.length(2);
  });
});

describe("retention: what a listing alone protects (issue 19)", function () {
  const base = { rollbackReleases: [], pinned: [] };

  it("keeps an imported backup past `keep`, and it takes no newest slot", function () {
    const imported = backup("manual", { imported: true });
    const later = [backup("a"), backup("b"), backup("c")];
    const decision = retention({ ...base, backups: [imported, ...later], keep: 2 });
    expect(ids(decision.forget)).to.deep.equal([later[0].id]);
    expect(decision.keep.find((k) => k.entry.id === imported.id)?.why).to.match(/^imported/);
  });

  it("a bootstrap backup never pushes a backup of real data out, however many there are", function () {
    const real = [backup("manual"), backup("scheduled"), backup("scheduled")];
    const fresh = [1, 2, 3, 4].map(() => backup("scheduled", { bootstrap: true }));
    const decision = retention({ ...base, backups: [...real, ...fresh], keep: 2 });
    expect(ids(decision.keep.map((k) => k.entry))).to.deep.equal(ids([real[2], real[1]]));
    expect(ids(decision.forget)).to.have.members([...ids(fresh), real[0].id]);
  });

  it("bootstrap backups fill only the slots real backups leave", function () {
    const real = backup("scheduled");
    const fresh = [1, 2, 3].map(() => backup("scheduled", { bootstrap: true }));
    const decision = retention({ ...base, backups: [real, ...fresh], keep: 3 });
    expect(ids(decision.keep.map((k) => k.entry))).to.deep.equal(ids([fresh[2], fresh[1], real]));
  });

  it("bootstrap backups take no daily slot from real ones", function () {
    const realDay = backup("scheduled", { time: "2026-11-20T10:00:00Z" });
    const fresh = ["21", "22"].map((d) =>
      backup("scheduled", { bootstrap: true, time: `2026-11-${d}T10:00:00Z` }),
    );
    const decision = retention({
      ...base,
      backups: [realDay, ...fresh],
      keep: 0,
      periodic: { keepDaily: 1 },
    });
    expect(ids(decision.keep.map((k) => k.entry))).to.deep.equal([realDay.id]);
  });

  it("keeps a restore's undo until a later deploy supersedes it", function () {
    const undo = backup("pre-restore");
    const later = [backup("a"), backup("b")];
    const before = retention({ ...base, backups: [undo, ...later], keep: 1, lastDeploy: null });
    expect(ids(before.forget)).to.deep.equal([later[0].id]);
    expect(before.keep.find((k) => k.entry.id === undo.id)?.why).to.match(/^undo of a restore/);
    const deployedAfter = new Date(Date.parse(undo.time) + 1000).toISOString();
    const after = retention({
      ...base,
      backups: [undo, ...later],
      keep: 1,
      lastDeploy: deployedAfter,
    });
    expect(ids(after.forget)).to.have.members([later[0].id, undo.id]);
  });

  it("keeps a reset-app's undo past any number of later backups, until a later deploy supersedes it", function () {
    const undo = backup("pre-reset-app");
    const later = [backup("scheduled"), backup("scheduled"), backup("scheduled")];
    const kept = retention({ ...base, backups: [undo, ...later], keep: 1, lastDeploy: null });
    expect(ids(kept.forget)).to.have.members([later[0].id, later[1].id]);
    expect(kept.keep.find((k) => k.entry.id === undo.id)?.why).to.match(/^undo of a reset-app/);
    const deployedBefore = new Date(Date.parse(undo.time) - 1000).toISOString();
    const stillKept = retention({
      ...base,
      backups: [undo, ...later],
      keep: 1,
      lastDeploy: deployedBefore,
      // A restore's completing deploy is no reason to keep a reset-app's undo longer, nor shorter.
      supersedingDeploy: null,
    });
    expect(ids(stillKept.forget)).not.to.include(undo.id);
    const deployedAfter = new Date(Date.parse(undo.time) + 1000).toISOString();
    const after = retention({
      ...base,
      backups: [undo, ...later],
      keep: 1,
      lastDeploy: deployedAfter,
    });
    expect(ids(after.forget)).to.include(undo.id);
  });

  it("keeps a rollback's undo past the rollback's own records, with or without the proxy; the next deploy supersedes it", function () {
    const undo = backup("pre-rollback", { release: "2.0.0", target: "1.0.0" });
    const at = (ms: number) => new Date(Date.parse(undo.time) + ms).toISOString();
    const later = [backup("scheduled"), backup("scheduled")];
    const decide = (deploys: { version: string; deployedAt: string; rolledBackFrom?: string }[]) =>
      retention({
        ...base,
        backups: [undo, ...later],
        keep: 1,
        lastDeploy: deploys[deploys.length - 1].deployedAt,
        supersedingDeploy: deploys[deploys.length - 1].deployedAt,
        deploys,
      });
    const before = [
      { version: "1.0.0", deployedAt: at(-600_000) },
      { version: "2.0.0", deployedAt: at(-300_000) },
    ];
    // Behind the proxy: the redeploy of 1.0.0 (before the undo, or after it by the clocks' skew), then the
    // rollback's own record of the reversal.
    const proxied = [
      ...before,
      { version: "1.0.0", deployedAt: at(3000) },
      { version: "1.0.0", deployedAt: at(9000), rolledBackFrom: "2.0.0" },
    ];
    const kept = decide(proxied);
    expect(ids(kept.forget)).to.deep.equal([later[0].id]);
    expect(kept.keep.find((k) => k.entry.id === undo.id)?.why).to.match(/^undo of a rollback/);
    // Without the proxy: the undo, the reversal, then the redeploy of 1.0.0 by the hook's plain record.
    expect(
      ids(decide([...before, { version: "1.0.0", deployedAt: at(20_000) }]).forget),
    ).to.deep.equal([later[0].id]);
    // Any deploy after those supersedes it: another release, or the same one deployed again.
    const next = decide([...proxied, { version: "1.0.1", deployedAt: at(60_000) }]);
    expect(ids(next.forget)).to.have.members([later[0].id, undo.id]);
    const again = decide([
      ...before,
      { version: "1.0.0", deployedAt: at(20_000) },
      { version: "1.0.0", deployedAt: at(60_000) },
    ]);
    expect(ids(again.forget)).to.include(undo.id);
    // Behind the proxy the redeploy came first: the next deploy, of the same release too, supersedes it.
    const redeployedAgain = decide([...proxied, { version: "1.0.0", deployedAt: at(86_400_000) }]);
    expect(ids(redeployedAgain.forget)).to.include(undo.id);
    const noSteps = decide([
      ...before,
      { version: "1.0.0", deployedAt: at(-2000) },
      { version: "1.0.0", deployedAt: at(86_400_000) },
    ]);
    expect(ids(noSteps.forget)).to.include(undo.id);
    // ...unless the clocks put that redeploy after the undo: then it is the rollback's own, as without the proxy.
    const skewed = decide([...before, { version: "1.0.0", deployedAt: at(1000) }]);
    expect(ids(skewed.forget)).not.to.include(undo.id);
    // A record whose date does not parse supersedes nothing.
    expect(
      ids(decide([...proxied, { version: "3.0.0", deployedAt: "garbage" }]).forget),
    ).not.to.include(undo.id);
    // A restore's undo has no such exception: the newer record supersedes it.
    const restoreUndo = { ...undo, id: `${undo.id}-r`, reason: "pre-restore" };
    const restoreDecision = retention({
      ...base,
      backups: [restoreUndo, ...later],
      keep: 1,
      lastDeploy: at(3000),
      deploys: proxied,
    });
    expect(ids(restoreDecision.forget)).to.include(restoreUndo.id);
    // A rollback's undo without its target (taken before it was recorded): its redeploy supersedes it.
    const untargeted = retention({
      ...base,
      backups: [{ ...undo, target: undefined }, ...later],
      keep: 1,
      lastDeploy: at(20_000),
      deploys: [...before, { version: "1.0.0", deployedAt: at(20_000) }],
    });
    expect(ids(untargeted.forget)).to.include(undo.id);
    // Without the history looked up, the newest deploy decides, as for every undo.
    const noHistory = retention({
      ...base,
      backups: [undo, ...later],
      keep: 1,
      lastDeploy: at(9000),
    });
    expect(ids(noHistory.forget)).to.include(undo.id);
  });

  it("the deploy a restore of another release's backup asks for does not supersede that restore's undo", function () {
    const undo = backup("pre-restore");
    const later = [backup("a"), backup("b")];
    const at = (ms: number) => new Date(Date.parse(undo.time) + ms).toISOString();
    const earlier = { version: "2.0.0", deployedAt: at(-60_000) };
    const restored = { release: "1.0.0", restoredAt: at(1000) };
    // The restore's own deploy of 1.0.0: the undo stays protected, pushed out of no slot.
    const completing = [earlier, { version: "1.0.0", deployedAt: at(2000) }];
    expect(supersedingDeploy(completing, restored)).to.equal(earlier.deployedAt);
    const kept = retention({
      ...base,
      backups: [undo, ...later],
      keep: 1,
      lastDeploy: completing[1].deployedAt,
      supersedingDeploy: supersedingDeploy(completing, restored),
    });
    expect(ids(kept.forget)).to.deep.equal([later[0].id]);
    // A deploy after it, or one of another release, moves on: the undo is superseded.
    const next = [...completing, { version: "1.0.1", deployedAt: at(3000) }];
    expect(supersedingDeploy(next, restored)).to.equal(at(3000));
    const other = [earlier, { version: "3.0.0", deployedAt: at(2000) }];
    expect(supersedingDeploy(other, restored)).to.equal(at(2000));
    // No restore on record, or one without a release: the newest deploy, as before.
    expect(supersedingDeploy(completing, null)).to.equal(at(2000));
    expect(supersedingDeploy(completing, { ...restored, release: null })).to.equal(at(2000));
    expect(supersedingDeploy([], restored)).to.equal(null);
    expect(supersedingDeploy([{ version: "1.0.0", deployedAt: at(2000) }], restored)).to.equal(
      null,
    );
  });

  it("keeps the undo an unfinished restore's marker names, whatever its reason", function () {
    const undo = backup("manual");
    const later = [backup("a"), backup("b")];
    const decision = retention({
      ...base,
      backups: [undo, ...later],
      keep: 1,
      lastDeploy: later[1].time,
      restoreUndo: [undo.id],
    });
    expect(decision.keep.find((k) => k.entry.id === undo.id)?.why).to.equal(
      "undo of the unfinished restore",
    );
  });

  it("keeps the backup an unfinished restore is restoring, the oldest too: its re-run finishes the restore", function () {
    const target = backup("manual");
    const later = [backup("a"), backup("b"), backup("c")];
    const facts = { ...base, backups: [target, ...later], keep: 2 };
    expect(ids(retention(facts).forget)).to.include(target.id);
    const decision = retention({ ...facts, restoreTarget: [target.id] });
    expect(ids(decision.forget)).not.to.include(target.id);
    expect(decision.keep.find((k) => k.entry.id === target.id)?.why).to.equal(
      "backup the unfinished restore is restoring (running it again finishes it)",
    );
  });

  it("a backup dated after the host's clock is kept but never takes a newest slot", function () {
    const real = [backup("a"), backup("b")];
    const now = new Date(Date.parse(real[1].time) + 60_000).toISOString();
    const future = backup("x", { time: "2027-06-01T00:00:00.000Z" });
    const decision = retention({ ...base, backups: [...real, future], keep: 1, now });
    expect(decision.keep.map((k) => [k.entry.id, k.why])).to.deep.equal([
      [future.id, "dated after the host's clock: kept, never counted as newest"],
      [real[1].id, "one of the newest 1"],
    ]);
    expect(ids(decision.forget)).to.deep.equal([real[0].id]);
  });

  it("allows five minutes of skew before a backup is dated in the future", function () {
    const now = "2026-11-27T10:00:00Z";
    expect(isFutureDated({ time: "2026-11-27T10:04:59Z" }, now)).to.equal(false);
    expect(isFutureDated({ time: "2026-11-27T10:05:01Z" }, now)).to.equal(true);
    const listed = [{ time: "2026-11-27T09:00:00Z" }, { time: "2026-11-28T09:00:00Z" }];
    expect(notFutureDated(listed, now)).to.deep.equal([listed[0]]);
    expect(notFutureDated(listed, undefined)).to.deep.equal(listed);
  });
});

describe("rollback releases", function () {
  it("are the running release and the one deployed before it", function () {
    const history = [
      { version: "1.0.0" },
      { version: "2.0.0" },
      { version: "2.0.0" },
      { version: "3.0.0" },
    ];
    expect(rollbackReleases("3.0.0", history)).to.deep.equal(["3.0.0", "2.0.0"]);
    expect(rollbackReleases(null, history)).to.deep.equal(["3.0.0", "2.0.0"]);
    expect(rollbackReleases("2.0.0", history.slice(0, 3))).to.deep.equal(["2.0.0", "1.0.0"]);
    expect(rollbackReleases(null, [])).to.deep.equal([]);
  });

  describe("keepDaily / keepWeekly / keepMonthly (restic's forget policy)", function () {
    const at = (iso: string, reason = "scheduled"): BackupEntry => ({
      id: `${iso.slice(0, 19).replace(/:/g, "-")}Z-${reason}`,
      snapshot: `s-${iso}`,
      time: iso,
      reason,
      release: "2.0.0",
      stack: "s",
      paths: ["/edms/database"],
    });
    // Three a day, 2026-11-20 (Friday, W47) to 2026-11-27 (Friday, W48), plus one in October.
    const days = [20, 21, 22, 23, 24, 25, 26, 27];
    const all = [
      at("2026-10-15T02:00:00Z"),
      ...days.flatMap((d) =>
        [2, 10, 18].map((h) => at(`2026-11-${d}T${String(h).padStart(2, "0")}:00:00Z`)),
      ),
    ];

    it("buckets weeks as ISO 8601 does (Monday first, the Thursday decides the year)", function () {
      expect(isoWeek(new Date("2026-11-22T23:59:59Z"))).to.equal("2026-W47"); // Sunday
      expect(isoWeek(new Date("2026-11-23T00:00:00Z"))).to.equal("2026-W48"); // Monday
      expect(isoWeek(new Date("2027-01-01T12:00:00Z"))).to.equal("2026-W53");
      expect(isoWeek(new Date("2024-12-30T12:00:00Z"))).to.equal("2025-W01");
    });

    it("keeps the newest backup of each of the last N days, weeks and months, on top of `keep`", function () {
      const decision = retention({
        backups: all,
        keep: 1,
        rollbackReleases: [],
        pinned: [],
        periodic: { keepDaily: 3, keepWeekly: 2, keepMonthly: 2 },
      });
      expect(decision.keep.map((k) => [k.entry.time, k.why])).to.deep.equal([
        ["2026-11-27T18:00:00Z", "one of the newest 1"],
        ["2026-11-26T18:00:00Z", "daily (newest of 2026-11-26)"],
        ["2026-11-25T18:00:00Z", "daily (newest of 2026-11-25)"],
        ["2026-11-22T18:00:00Z", "weekly (newest of 2026-W47)"],
        ["2026-10-15T02:00:00Z", "monthly (newest of 2026-10)"],
      ]);
      expect(decision.forget).to.have.length(all.length - 5);
    });

    it("a periodic keep never forgets what `keep`, rollback targets or pins hold", function () {
      const target = at("2026-11-20T02:00:00Z", "pre-deploy");
      const decision = retention({
        backups: [...all.filter((b) => b.time !== target.time), { ...target, target: "2.0.0" }],
        keep: 2,
        rollbackReleases: ["2.0.0"],
        pinned: [all[2].id],
        periodic: { keepDaily: 1 },
      });
      expect(decision.keep.map((k) => k.why)).to.deep.equal([
        "one of the newest 2",
        "one of the newest 2",
        "in use by this operation",
        "rollback target (pre-deploy backup of 2.0.0)",
      ]);
    });
  });
});
