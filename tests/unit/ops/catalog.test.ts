import { expect } from "chai";
import { REASONS } from "../../../model/hooks";
import {
  handedOrNewer,
  isGone,
  newestOf,
  preDeployBackupFor,
  preDeployBackupsFor,
  readManifest,
} from "../../../ops/store/catalog";
import { EXIT, OpsError } from "../../../ops/core/errors";
import type { OpsSession } from "../../../ops/engine/session";
import { BackupEntry } from "../../../ops/store/restic";

describe("catalog: the pre-deploy backup for release X", function () {
  const backup = (
    time: string,
    fields: Partial<BackupEntry> = {},
    reason: string = REASONS.preDeploy,
  ): BackupEntry => ({
    id: `${time.replace(/:/g, "-")}-${reason}`,
    snapshot: time,
    time,
    reason,
    release: "1.0.0",
    target: "2.0.0",
    stack: "staging",
    paths: [],
    ...fields,
  });
  const query = { stack: "staging", release: "2.0.0" };

  it("is the newest pre-deploy backup targeting the release, whatever the listing's order", function () {
    const older = backup("2026-11-20T10:00:00Z");
    const newer = backup("2026-11-25T14:00:00Z");
    expect(preDeployBackupFor([older, newer], query)).to.equal(newer);
    expect(preDeployBackupFor([newer, older], query)).to.equal(newer);
  });

  it("is never a backup dated after the host's clock", function () {
    const older = backup("2026-11-20T10:00:00Z");
    const ahead = backup("2027-01-01T00:00:00Z");
    const now = "2026-11-25T00:00:00Z";
    expect(preDeployBackupFor([older, ahead], { ...query, now })).to.equal(older);
    expect(handedOrNewer([older, ahead], { ...query, now }, "")).to.equal(older);
    expect(newestOf([older, ahead], now)).to.equal(older);
  });

  it("lists every one newest first, and only those taken after `after`", function () {
    const [a, b, c] = ["2026-11-10T10:00:00Z", "2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z"].map(
      (t) => backup(t),
    );
    expect(preDeployBackupsFor([b, c, a], query)).to.deep.equal([c, b, a]);
    expect(
      preDeployBackupsFor([b, c, a], { ...query, after: "2026-11-15T00:00:00Z" }),
    ).to.deep.equal([c, b]);
  });

  it("takes the later id of two in the same second, as the listing orders them", function () {
    const a = backup("2026-11-25T14:00:00Z", { id: "2026-11-25T14-00-00Z-pre-deploy" });
    const b = backup("2026-11-25T14:00:00Z", { id: "2026-11-25T14-00-00Z-pre-deploy-2" });
    expect(preDeployBackupFor([b, a], query)).to.equal(b);
  });

  it("ignores other stacks', other releases' and other reasons' backups", function () {
    const ours = backup("2026-11-20T10:00:00Z");
    const listing = [
      ours,
      backup("2026-11-21T10:00:00Z", { stack: "production" }),
      backup("2026-11-22T10:00:00Z", { target: "3.0.0" }),
      backup("2026-11-23T10:00:00Z", { target: undefined }),
      backup("2026-11-24T10:00:00Z", {}, "manual"),
      backup("2026-11-24T11:00:00Z", {}, REASONS.preFreshStart),
    ];
    expect(preDeployBackupFor(listing, query)).to.equal(ours);
  });

  it("is none when no backup matches, or none is newer than `after`", function () {
    expect(preDeployBackupFor([], query)).to.equal(undefined);
    const only = backup("2026-11-20T10:00:00Z", { stack: "production" });
    expect(preDeployBackupFor([only], query)).to.equal(undefined);
    const taken = backup("2026-11-20T10:00:00Z");
    expect(preDeployBackupFor([taken], { ...query, after: "2026-11-20T10:00:00Z" })).to.equal(
      undefined,
    );
    expect(preDeployBackupFor([taken], { ...query, after: "2026-11-19T10:00:00Z" })).to.equal(
      taken,
    );
  });

  it("a handed id wins unless a newer pre-deploy backup of the release exists; an empty one finds the newest", function () {
    const handed = backup("2026-11-20T10:00:00Z");
    const fresh = backup("2026-11-25T14:00:00Z");
    const other = backup("2026-11-26T14:00:00Z", { target: "3.0.0" });
    expect(handedOrNewer([handed, other], query, handed.id)).to.equal(handed);
    // A fresh backup taken after a failed drill, with the backup hook not run again: that one.
    expect(handedOrNewer([handed, fresh, other], query, handed.id)).to.equal(fresh);
    // A retried deploy whose backup hook only updated hands "": the newest of the release.
    expect(handedOrNewer([handed, fresh], query, "")).to.equal(fresh);
    expect(handedOrNewer([other], query, "")).to.equal(undefined);
  });
});

describe("catalog: a backup whose manifest cannot be read", function () {
  const entry = {
    id: "2026-11-20T10-00-00Z-manual",
    snapshot: "a".repeat(64),
    time: "2026-11-20T10:00:00Z",
    reason: "manual",
    release: "1.0.0",
    stack: "staging",
    paths: [],
  } as BackupEntry;
  const listed = JSON.stringify([
    {
      id: entry.snapshot,
      time: entry.time,
      hostname: "staging",
      paths: ["/edms"],
      tags: ["edms", `id=${entry.id}`, "reason=manual"],
    },
  ]);
  /** A session whose restic cannot dump the manifest, listing `snapshots` (or failing to list). */
  const session = (snapshots: string | null) =>
    ({
      settings: { stack: "staging" },
      exec: async (script: string) =>
        script.includes(" dump ")
          ? { code: 1, stdout: "", stderr: "Fatal: no matching ID found" }
          : snapshots === null
            ? Promise.reject(new Error("restic: repository cannot be read"))
            : { code: 0, stdout: snapshots, stderr: "" },
    }) as unknown as OpsSession;

  it("forgotten since it was looked up: a refusal that says so, not damage", async function () {
    const err = await readManifest(session("[]"), entry).catch((e: OpsError) => e);
    expect(isGone(err)).to.equal(true);
    expect((err as OpsError).exitCode).to.equal(EXIT.refused);
    expect((err as OpsError).message).to.match(/is no longer in the repository: it was forgotten/);
  });

  it("still listed, or the listing fails too: not usable, as before", async function () {
    for (const snapshots of [listed, null]) {
      const err = await readManifest(session(snapshots), entry).catch((e: OpsError) => e);
      expect(isGone(err)).to.equal(false);
      expect((err as OpsError).message).to.match(/is not usable: its manifest cannot be read/);
    }
  });
});
