import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { dataSeen } from "../../../ops/backup/emptyDatabase";
import {
  listingCount,
  MEDIA_COUNT_SCRIPT,
  mediaCountProblems,
  parseMediaCount,
  parseMediaListing,
} from "../../../ops/backup/mediaCount";
import { parseManifest } from "../../../ops/store/manifest";
import { unreadableItems } from "../../../ops/store/restic";

const manifest = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    format: 2,
    id: "2026-11-25T14-00-00Z-manual",
    database: { file: "db.dump", bytes: 10, sha256: "a".repeat(64) },
    tables: {},
    migrations: {},
    ...extra,
  });

describe("backup: media count in the manifest", () => {
  it("a manifest with a media count reads; one without (older backups) reads; a broken one is corrupt", () => {
    expect(parseManifest(manifest({ media: { files: 3, bytes: 700 } })).media).to.deep.equal({
      files: 3,
      bytes: 700,
    });
    expect(parseManifest(manifest()).media).to.equal(undefined);
    expect(() => parseManifest(manifest({ media: { files: -1, bytes: 2 } }))).to.throw(
      /bad media count/,
    );
    expect(() => parseManifest(manifest({ media: { files: "3" } }))).to.throw(/bad media count/);
  });

  it("the count leaves out only the health probe's files at the top of media; an upload named like one deeper counts, odd names once", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-media-count-"));
    try {
      fs.mkdirSync(path.join(dir, "docs", "-rf"), { recursive: true });
      fs.writeFileSync(path.join(dir, ".health-abc"), "probe");
      fs.writeFileSync(path.join(dir, "docs", ".health-insurance.pdf"), "12345");
      fs.writeFileSync(path.join(dir, "docs", "-rf", "line\nbreak \t*.pdf"), "123");
      fs.writeFileSync(path.join(dir, "--help"), "1");
      const counted = spawnSync("sh", ["-c", MEDIA_COUNT_SCRIPT, "sh", dir], { encoding: "utf8" });
      expect(parseMediaCount(counted.stdout), counted.stderr).to.deep.equal({ files: 3, bytes: 9 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the count script's output parses; anything else is a clear error", () => {
    expect(parseMediaCount("12 40960\n")).to.deep.equal({ files: 12, bytes: 40960 });
    expect(parseMediaCount("0 0")).to.deep.equal({ files: 0, bytes: 0 });
    expect(() => parseMediaCount("sh: awk: not found")).to.throw(/not "<files> <bytes>"/);
  });

  it("fewer files or bytes than recorded is a problem naming both numbers; more (uploads meanwhile) is not", () => {
    const recorded = { files: 5, bytes: 500 };
    expect(mediaCountProblems("the snapshot", recorded, { files: 5, bytes: 500 })).to.deep.equal(
      [],
    );
    expect(mediaCountProblems("the snapshot", recorded, { files: 7, bytes: 900 })).to.deep.equal(
      [],
    );
    expect(mediaCountProblems("the snapshot", recorded, { files: 4, bytes: 400 })).to.deep.equal([
      "media: the snapshot has 4 files, the manifest recorded 5 at backup time (1 missing)",
      "media: the snapshot has 400 bytes, the manifest recorded 500 at backup time",
    ]);
    expect(mediaCountProblems("the snapshot", undefined, { files: 0, bytes: 0 })).to.deep.equal([]);
  });

  it("a snapshot listing counts its files and their bytes (an empty file has no size in restic's JSON)", () => {
    const listing = [
      '{"time":"2026-11-25T14:00:00Z","paths":["/edms/media"],"struct_type":"snapshot"}',
      '{"name":"media","type":"dir","path":"/edms/media","mtime":"2026-11-25T14:00:00Z","struct_type":"node"}',
      '{"name":"a.bin","type":"file","path":"/edms/media/a.bin","size":100,"mtime":"2026-11-25T14:00:00Z","struct_type":"node"}',
      '{"name":"e","type":"file","path":"/edms/media/d/e","mtime":"2026-11-25T14:00:00Z","struct_type":"node"}',
    ].join("\n");
    expect(listingCount(parseMediaListing(listing))).to.deep.equal({ files: 2, bytes: 100 });
  });
});

describe("backup: what restic could not read (exit code 3)", () => {
  it("names each item once with the reason, from restic 0.14's and 0.17's error lines", () => {
    const deep = `/edms/media/x/${"n".repeat(300)}`;
    const stderr = [
      `{"message_type":"error","error":{"Op":"lstat","Path":"${deep}","Err":36},"during":"scan","item":"${deep}"}`,
      `{"message_type":"error","error":{"Op":"lstat","Path":"${deep}","Err":36},"during":"archival","item":"${deep}"}`,
      '{"message_type":"error","error":{"Op":"open","Path":"/edms/media/b.bin","Err":13},"during":"archival","item":"/edms/media/b.bin"}',
      '{"message_type":"error","error":{"message":"read /edms/media/c.bin: input/output error"},"during":"archival","item":"/edms/media/c.bin"}',
      "Warning: at least one source file could not be read",
    ].join("\n");
    const items = unreadableItems(stderr);
    expect(items).to.have.length(3);
    expect(items[0]).to.match(/^\/edms\/media\/x\/n+…n+: lstat: path too long$/);
    expect(items[0].length).to.be.lessThan(200);
    expect(items[1]).to.equal("/edms/media/b.bin: open: permission denied");
    expect(items[2]).to.equal("/edms/media/c.bin: read: input/output error");
  });
});

describe("backup: nothing to back up, or data lost", () => {
  const created = Date.parse("2026-11-20T10:00:00Z");
  it("a fresh first deploy (no history, no backups) is nothing to back up", () => {
    expect(dataSeen({ databaseCreated: created, history: [], backups: [] })).to.equal(null);
  });

  it("history or backups since the volume was created show data: named in the failure", () => {
    expect(
      dataSeen({
        databaseCreated: created,
        history: [{ version: "2.0.0", deployedAt: "2026-11-21T10:00:00Z" }],
        backups: [
          {
            id: "2026-11-22T10-00-00Z-scheduled",
            time: "2026-11-22T10:00:00Z",
            reason: "scheduled",
          },
        ],
      }),
    ).to.equal(
      "1 deployment(s) recorded onto it (the last: release 2.0.0 at 2026-11-21T10:00:00Z) and 1 backup(s) taken of it (the newest: 2026-11-22T10-00-00Z-scheduled)",
    );
  });

  it("history and backups of an earlier volume of the same name (before a reset) do not count", () => {
    expect(
      dataSeen({
        databaseCreated: created,
        history: [{ version: "2.0.0", deployedAt: "2026-11-19T10:00:00Z" }],
        backups: [
          {
            id: "2026-11-19T11-00-00Z-pre-reset",
            time: "2026-11-19T11:00:00Z",
            reason: "pre-reset",
          },
        ],
      }),
    ).to.equal(null);
  });

  it("imported, earlier-generation and future-dated backups dated after the volume are not of its data", () => {
    expect(
      dataSeen({
        databaseCreated: created,
        now: "2026-11-23T10:00:00Z",
        history: [],
        backups: [
          {
            id: "2026-11-22T10-00-00Z-manual",
            time: "2026-11-22T10:00:00Z",
            reason: "manual",
            imported: true,
          },
          {
            id: "2026-11-22T11-00-00Z-pre-fresh-start",
            time: "2026-11-22T11:00:00Z",
            reason: "pre-fresh-start",
          },
          { id: "2099-01-01T00-00-00Z-manual", time: "2099-01-01T00:00:00Z", reason: "manual" },
        ],
      }),
    ).to.equal(null);
  });

  it("an unknown volume creation time counts all of it", () => {
    expect(
      dataSeen({
        databaseCreated: null,
        history: [],
        backups: [
          { id: "2026-11-19T11-00-00Z-manual", time: "2026-11-19T11:00:00Z", reason: "manual" },
        ],
      }),
    ).to.match(/^1 backup\(s\) taken of it/);
  });
});
