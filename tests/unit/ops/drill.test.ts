import { expect } from "chai";
import { chooseMedia, parseDiff, parseMediaListing } from "../../../ops/backup/drill";
import { newestGood } from "../../../ops/reports/health";

describe("drill: which media files are checksummed", function () {
  // As `restic ls --recursive --json` (0.14) prints them: the snapshot first, then one node per line.
  const listing = [
    '{"time":"2026-11-27T15:00:00Z","paths":["/edms/database","/edms/media"],"struct_type":"snapshot"}',
    '{"name":"media","type":"dir","path":"/edms/media","mtime":"2026-11-27T14:59:00.5Z","struct_type":"node"}',
    '{"name":"a.bin","type":"file","path":"/edms/media/documents/a.bin","size":2048,"mtime":"2026-11-27T14:58:01.999999999Z","struct_type":"node"}',
    '{"name":"b.bin","type":"file","path":"/edms/media/documents/b.bin","size":10,"mtime":"2026-11-27T14:58:02Z","struct_type":"node"}',
    '{"name":"c.bin","type":"file","path":"/edms/media/c.bin","size":0,"mtime":"2026-11-27T14:58:03Z","struct_type":"node"}',
  ].join("\n");

  it("reads files only, relative to the media root, with mtime in whole seconds", function () {
    expect(parseMediaListing(listing)).to.deep.equal([
      { path: "documents/a.bin", size: 2048, mtime: Date.parse("2026-11-27T14:58:01Z") / 1000 },
      { path: "documents/b.bin", size: 10, mtime: Date.parse("2026-11-27T14:58:02Z") / 1000 },
      { path: "c.bin", size: 0, mtime: Date.parse("2026-11-27T14:58:03Z") / 1000 },
    ]);
  });

  it("takes added and modified media files from restic diff, not removed ones, dirs or the database", function () {
    const diff = [
      "comparing snapshot 1a2b3c4d to 5e6f7a8b:",
      "",
      "M    /edms/database/db.dump",
      "+    /edms/media/documents/",
      "+    /edms/media/documents/new file.bin",
      "M    /edms/media/c.bin",
      "-    /edms/media/gone.bin",
      "U    /edms/media/documents/a.bin",
      "",
      "Files:           1 new,     1 removed,     2 changed",
    ].join("\n");
    expect(parseDiff(diff)).to.deep.equal(["documents/new file.bin", "c.bin"]);
  });

  it("checks every changed file plus a random sample of the rest; everything without a previous drill", function () {
    const files = parseMediaListing(listing);
    const first = () => 0;
    expect(chooseMedia(files, ["c.bin"], 1, first).map((f) => f.path)).to.deep.equal([
      "c.bin",
      "documents/a.bin",
    ]);
    expect(chooseMedia(files, [], 0, first)).to.deep.equal([]);
    expect(chooseMedia(files, ["c.bin"], 10, first)).to.have.length(3);
    expect(chooseMedia(files, null, 0, first)).to.deep.equal(files);
  });
});

describe("health: the newest good backup", function () {
  const entry = (id: string, time: string) => ({
    id,
    snapshot: id,
    time,
    reason: "manual",
    release: "2.0.0",
    stack: "s",
    paths: [],
  });
  const complete = [
    entry("a", "2026-11-27T00:00:00Z"),
    entry("b", "2026-11-27T06:00:00Z"),
    entry("c", "2026-11-27T09:00:00Z"),
  ];
  const now = Date.parse("2026-11-27T12:00:00Z");

  it("is the newest backup whose latest drill did not fail; undrilled backups count", function () {
    expect(newestGood(complete, new Map(), now)).to.deep.equal({
      newestGood: "c",
      time: "2026-11-27T09:00:00Z",
      ageHours: 3,
      failedDrills: [],
    });
    const drills = new Map([
      ["c", false],
      ["b", false],
      ["a", true],
    ]);
    expect(newestGood(complete, drills, now)).to.deep.include({
      newestGood: "a",
      ageHours: 12,
      failedDrills: ["c", "b"],
    });
  });

  it("is never a backup dated after the host's clock", function () {
    const ahead = entry("z", "2026-11-28T12:00:00Z");
    expect(newestGood([...complete, ahead], new Map(), now).newestGood).to.equal("c");
  });

  it("is none when there is no backup, or every one failed its drill", function () {
    expect(newestGood([], new Map(), now).newestGood).to.equal(null);
    expect(newestGood(complete.slice(0, 1), new Map([["a", false]]), now)).to.deep.equal({
      newestGood: null,
      time: null,
      ageHours: null,
      failedDrills: ["a"],
    });
  });
});
