import { olderThanMinimum, resticImageVersion } from "../../../model/config/backup";
import { expect } from "chai";
import {
  backupTags,
  envFileLine,
  parseBackupSummary,
  parseSnapshots,
  resticVersion,
} from "../../../ops/store/restic";

describe("restic snapshots as backups", function () {
  const snapshot = (tags: string[], time: string, id = "a".repeat(64)) => ({
    id,
    time,
    hostname: "prod",
    paths: ["/edms/database", "/edms/media"],
    tags,
  });

  it("round-trips a backup's identity through its tags", function () {
    const tags = backupTags({
      id: "2026-11-27T10-00-00Z-pre-deploy",
      reason: "pre-deploy",
      release: "1.0.0",
      target: "2.0.0",
      stack: "production",
    });
    const [entry] = parseSnapshots(
      JSON.stringify([snapshot(tags.split(","), "2026-11-27T10:00:01Z")]),
    );
    expect(entry).to.deep.equal({
      id: "2026-11-27T10-00-00Z-pre-deploy",
      snapshot: "a".repeat(64),
      time: "2026-11-27T10:00:01Z",
      reason: "pre-deploy",
      release: "1.0.0",
      target: "2.0.0",
      stack: "production",
      paths: ["/edms/database", "/edms/media"],
    });
  });

  it("a backup of a fresh stack has no release; snapshots without our tags are not backups", function () {
    const entries = parseSnapshots(
      JSON.stringify([
        snapshot(
          ["edms", "id=2026-11-27T10-00-00Z-manual", "reason=manual", "release=none"],
          "2026-11-27T10:00:00Z",
        ),
        snapshot(["someone-else"], "2026-11-27T09:00:00Z"),
        snapshot(["edms"], "2026-11-27T09:00:00Z"),
      ]),
    );
    expect(entries).to.have.length(1);
    expect(entries[0].release).to.equal(null);
  });

  it("reads a snapshot without hostname or with null paths, and skips one that is not a snapshot", function () {
    const ours = {
      ...snapshot(["edms", "id=2026-11-27T10-00-00Z-manual", "stack=s"], "2026-11-27T10:00:00Z"),
    };
    const { hostname, ...noHost } = ours as Record<string, unknown>;
    expect(hostname).to.be.a("string");
    const entries = parseSnapshots(
      JSON.stringify([{ ...noHost, paths: null }, { id: 42 }, "junk"]),
    );
    expect(entries.map((e) => e.id)).to.deep.equal(["2026-11-27T10-00-00Z-manual"]);
    expect(entries[0].paths).to.deep.equal([]);
    expect(() => parseSnapshots("not json")).to.throw(/unreadable snapshot list/);
  });

  it("lists oldest first by snapshot time; an empty repository prints null", function () {
    const entries = parseSnapshots(
      JSON.stringify([
        snapshot(["edms", "id=2026-11-27T12-00-00Z-b"], "2026-11-27T12:00:00Z", "b"),
        snapshot(["edms", "id=2026-11-27T11-00-00Z-a"], "2026-11-27T11:00:00Z", "a"),
      ]),
    );
    expect(entries.map((e) => e.snapshot)).to.deep.equal(["a", "b"]);
    expect(parseSnapshots("null")).to.deep.equal([]);
    expect(() => parseSnapshots("{oops")).to.throw(/unreadable snapshot list/);
  });

  it("takes the summary line of restic backup --json and refuses output without one", function () {
    const out =
      '{"message_type":"status","percent_done":0.5}\n{"message_type":"summary","snapshot_id":"abc","files_new":1,"files_changed":0,"files_unmodified":9,"data_added":10,"total_files_processed":10,"total_bytes_processed":100}\n';
    expect(parseBackupSummary(out).snapshot_id).to.equal("abc");
    expect(() => parseBackupSummary('{"message_type":"status"}')).to.throw(/no summary/);
  });

  it("reads the restic version an image tag names, and which are too old", function () {
    expect(resticImageVersion("restic/restic:0.18.0")).to.deep.equal([0, 18]);
    expect(resticImageVersion("mirror.local:5000/ops/restic:v0.16.4")).to.deep.equal([0, 16]);
    expect(resticImageVersion("edms-test/backup:restic-0.18")).to.equal(null);
    expect(resticImageVersion("restic/restic:latest")).to.equal(null);
    expect(olderThanMinimum([0, 16])).to.equal(true);
    expect(olderThanMinimum([0, 17])).to.equal(false);
    expect(olderThanMinimum([1, 0])).to.equal(false);
  });

  it("reads restic's version: restore of changed files only needs 0.17", function () {
    expect(resticVersion("restic 0.14.0 compiled with go1.19.8 on linux/amd64")).to.deep.equal([
      0, 14,
    ]);
    expect(resticVersion("restic 0.17.3 compiled with go1.23")).to.deep.equal([0, 17]);
    expect(resticVersion("nonsense")).to.deep.equal([0, 0]);
  });

  it("quotes off-host credentials for the shell's env file, whatever they contain", function () {
    expect(envFileLine("AWS_SECRET_ACCESS_KEY", "a'b $c `d` \\e")).to.equal(
      "AWS_SECRET_ACCESS_KEY='a'\\''b $c `d` \\e'",
    );
    expect(() => envFileLine("bad-name", "x")).to.throw(/not an environment variable name/);
    expect(() => envFileLine("LD_PRELOAD", "/tmp/x.so")).to.throw(/not a restic backend variable/);
  });
});
