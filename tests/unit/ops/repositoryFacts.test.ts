import { expect } from "chai";
import { holdsOnlyBootstrap } from "../../../ops/store/bootstrap";
import { historySource, mergeHistories } from "../../../ops/store/history";
import { Deployment } from "../../../ops/store/records";
import { backupTags, BackupEntry, parseSnapshots } from "../../../ops/store/restic";

describe("bootstrap-only backups (ops/store/bootstrap.ts)", function () {
  const record = {
    postgresVolume: "s_postgres_data",
    tables: { auth_user: 1, documents_document: 0, django_migrations: 20 },
    recordedAt: "2026-11-27T10:00:00Z",
  };

  it("holds only the bootstrap when every row count equals the record's, on the same volume", function () {
    expect(holdsOnlyBootstrap(record, "s_postgres_data", { ...record.tables })).to.equal(true);
  });

  it("is real data as soon as one row differs, a table the record lacks has rows, or the volume differs", function () {
    expect(
      holdsOnlyBootstrap(record, "s_postgres_data", { ...record.tables, documents_document: 1 }),
    ).to.equal(false);
    expect(
      holdsOnlyBootstrap(record, "s_postgres_data", { ...record.tables, "audit.log": 3 }),
    ).to.equal(false);
    expect(
      holdsOnlyBootstrap(record, "s_postgres_data", { ...record.tables, "audit.log": 0 }),
    ).to.equal(true);
    expect(holdsOnlyBootstrap(record, "s_postgres_data_g2", { ...record.tables })).to.equal(false);
    expect(holdsOnlyBootstrap(null, "s_postgres_data", { ...record.tables })).to.equal(false);
  });
});

describe("retention tags on snapshots", function () {
  it("`imported` and `bootstrap` round-trip through restic's tags", function () {
    const tags = backupTags({
      id: "2026-11-27T10-00-00Z-manual",
      reason: "manual",
      release: "1.0.0",
      stack: "s",
      imported: true,
      bootstrap: true,
    });
    expect(tags.split(",")).to.include.members(["imported", "bootstrap"]);
    const [entry] = parseSnapshots(
      JSON.stringify([
        { id: "abc", time: "2026-11-27T10:00:00Z", hostname: "s", tags: tags.split(",") },
      ]),
    );
    expect(entry).to.deep.include({ imported: true, bootstrap: true });
    const [plain] = parseSnapshots(
      JSON.stringify([
        { id: "abc", time: "2026-11-27T10:00:00Z", tags: ["edms", "id=x", "reason=manual"] },
      ]),
    );
    expect(plain).to.not.have.any.keys("imported", "bootstrap");
  });
});

describe("deployment history carried by the repository (history.ts)", function () {
  const deployment = (version: string, deployedAt: string): Deployment => ({
    version,
    image: `img:${version}`,
    deployedAt,
    stack: "s",
    environment: "production",
    postgresVolume: "s_postgres_data",
    migrations: {},
    preDeployBackup: null,
  });
  const old = [
    deployment("1.0.0", "2026-11-01T10:00:00Z"),
    deployment("2.0.0", "2026-11-10T10:00:00Z"),
  ];
  const fresh = deployment("2.0.0", "2026-11-27T10:00:00Z");
  const entry = (time: string, extra: Partial<BackupEntry> = {}): BackupEntry => ({
    id: `${time}-x`,
    snapshot: `snap-${time}`,
    time,
    reason: "scheduled",
    release: "2.0.0",
    stack: "s",
    paths: [],
    ...extra,
  });

  it("merges the host's and a snapshot's history, each deployment once, oldest first", function () {
    expect(mergeHistories([fresh], [...old, fresh])).to.deep.equal([...old, fresh]);
    expect(mergeHistories(old, [])).to.deep.equal(old);
  });

  it("reads the newest real backup older than the host's first deployment (a new host)", function () {
    const listing = [
      entry("2026-11-11T10:00:00Z"),
      entry("2026-11-12T10:00:00Z"),
      entry("2026-11-13T10:00:00Z", { imported: true }),
      entry("2026-11-27T11:00:00Z", { bootstrap: true }),
    ];
    expect(historySource([fresh], listing, "")?.time).to.equal("2026-11-12T10:00:00Z");
    expect(historySource([], listing, "")?.time).to.equal("2026-11-12T10:00:00Z");
  });

  it("reads nothing on a host whose history is older than every backup, or once adopted", function () {
    const listing = [entry("2026-11-11T10:00:00Z"), entry("2026-11-12T10:00:00Z")];
    expect(historySource(old, listing, "")).to.equal(undefined);
    expect(historySource([fresh], listing, "snap-2026-11-12T10:00:00Z")).to.equal(undefined);
    expect(
      historySource([fresh], [entry("2026-11-27T11:00:00Z", { bootstrap: true })], ""),
    ).to.equal(undefined);
  });
});
