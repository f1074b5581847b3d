import { expect } from "chai";
import { BackupEntry } from "../../../ops/lib/restic";
import { retention, rollbackReleases } from "../../../ops/lib/retention";

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
});
