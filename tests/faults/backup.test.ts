/**
 * Backups under faults: killed mid-way, two at once, a damaged repository, a full disk; and the
 * retention policy, including the restore of the oldest backup at the `keep` limit.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import { opsKilledAfter, opsKilledWhen, SmallDisk, TestStack } from "../harness/stack";

describe("e2e: backup faults", function () {
  const stack = new TestStack("flt", "staging", {
    "edms:version": "2.0.0",
    "edms:backup": { beforeDeploy: false, keep: 2 },
  });
  before(async () => {
    await stack.freshDeploy();
    await stack.seed("f", 40, 256 * 1024);
  });
  after(() => stack.destroy());

  // The helpers that mount the stage: dump clients. Not restic's writer helpers (the same role, no stage),
  // which may finish their run after a kill by design and are removed by the next lock holder.
  const dumpClients = async () =>
    (
      await docker([
        "ps",
        "-q",
        "--filter",
        `label=edms.stack=${stack.name}`,
        "--filter",
        "label=edms.role=ops-helper",
        "--filter",
        `volume=${stack.prefix}_ops_stage`,
      ])
    ).stdout.trim();
  /** The processes of containers left running, for the failure's message: where they wait. */
  const described = async (ids: string) => {
    const tops = await Promise.all(
      ids
        .split("\n")
        .filter(Boolean)
        .map(async (id) => {
          const top = await docker(["top", id, "-o", "pid,stat,wchan:20,etime,args"], {
            allowFailure: true,
          });
          return `\n${id}:\n${top.stdout}${top.stderr}`;
        }),
    );
    return tops.join("");
  };
  /** What is left in the lock's stage volume (the dump is plaintext data): "" when nothing or no volume. */
  const stageLeft = async () => {
    const stage = `${stack.prefix}_ops_stage`;
    const listed = await docker(["volume", "ls", "-q", "--filter", `name=^${stage}$`]);
    return listed.stdout.trim() ? stack.onVolume(stage, "ls -A /v") : "";
  };

  it("6a. a backup killed (SIGKILL) at five points is never listed; the lock and restic's locks go with it; the next one verifies", async function () {
    const good = await stack.ops(["backup", "--reason", "good"]);
    expect(good.code, good.stderr).to.equal(0);
    const before = await stack.backupIds();
    let kills = 0;
    // At its phases, not at fixed times, which a fast idle host passes before the kill and a loaded one not
    // yet: opening the session, the dump client's start, mid-dump, between the dump and restic, restic.
    const args = ["backup", "--stack", stack.name, "--reason", "killed"];
    const points: [string, () => Promise<{ signal: NodeJS.Signals | null }>][] = [
      ["300ms", () => opsKilledAfter(args, 300)],
      ["the dump's start", () => opsKilledWhen(args, /dumping database/)],
      ["mid-dump", () => opsKilledWhen(args, /dumping database/, 100)],
      ["the dump's end", () => opsKilledWhen(args, /dumped /)],
      ["restic's run", () => opsKilledWhen(args, /storing snapshot/, 100)],
    ];
    for (const [index, [at, killed]] of points.entries()) {
      await stack.seed(`k${index}`, 2, 128 * 1024); // something new to store each time
      const { signal } = await killed();
      if (signal !== "SIGKILL") {
        continue; // finished before the kill: nothing to check at this point
      }
      kills += 1;
      // The lock container follows its killed holder once it has emptied the stage.
      expect(await stack.lockLeft(), `lock left behind after a kill at ${at}`).to.equal("");
      // A dump client outlives its edms-ops only while it stops its pg_dump and removes the file.
      for (let i = 0; i < 40 && (await dumpClients()) !== ""; i += 1) {
        await new Promise((r) => setTimeout(r, 500));
      }
      const left = await dumpClients();
      expect(
        left,
        `a dump client still running after a kill at ${at}${await described(left)}`,
      ).to.equal("");
      expect(await stageLeft(), `plaintext left in the stage after a kill at ${at}`).to.equal("");
      const ids = await stack.backupIds();
      expect(ids.filter((id) => id.endsWith("-killed")).length + before.length).to.be.at.most(
        ids.length,
      );
      expect(ids).to.include.members(before.slice(-1));
    }
    expect(kills, "backups actually killed mid-way").to.be.at.least(3);
    const next = await stack.ops(["backup", "--reason", "after-kill"]);
    expect(next.code, next.stderr).to.equal(0);
    const verify = await stack.ops(["verify", next.stdout.trim()]);
    expect(verify.code, verify.stderr).to.equal(0);
    expect(
      await stack.onVolume(stack.backupsVolume, "ls /v/restic/locks | wc -l"),
      "restic locks left",
    ).to.equal("0");
    expect(await stageLeft(), "the stage after a completed backup").to.equal("");
  });

  it("6f. a backup under write load (uploads with their celery task, and the health probe writing to media) verifies", async function () {
    let writing = true;
    let uploads = 0;
    const writer = (async () => {
      for (let i = 0; writing && i < 20; i += 1) {
        await stack.seed(`load${i}`, 2, 256 * 1024);
        uploads += 2;
      }
    })();
    const prober = (async () => {
      for (let i = 0; writing && i < 200; i += 1) {
        await stack.ops(["health"]);
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    const backup = await stack.ops(["backup", "--reason", "under-load"]);
    writing = false;
    await Promise.all([writer, prober]);
    expect(backup.code, backup.stderr).to.equal(0);
    expect(uploads, "uploads while the backup ran").to.be.greaterThan(0);
    const verify = await stack.ops(["verify", backup.stdout.trim()]);
    expect(verify.code, verify.stderr).to.equal(0);
  });

  it("6i. a backup with postgres stopped half way: a clear error, no snapshot written, the next backup verifies", async function () {
    await stack.seed("pgstop", 4, 256 * 1024);
    const before = await stack.backupIds();
    const run = stack.ops(["backup", "--reason", "pg-stopped"]);
    await new Promise((r) => setTimeout(r, 2500));
    await docker(["stop", `${stack.prefix}-postgres`]);
    const failed = await run;
    await stack.startPostgres();
    const after = await stack.backupIds();
    if (failed.code === 0) {
      // It finished before the stop: then it is a complete backup.
      expect(after).to.include(failed.stdout.trim());
    } else {
      expect(failed.code).to.equal(1);
      expect(failed.stderr).to.match(/^edms-ops: /m);
      expect(failed.stderr).not.to.match(/unexpected error/);
      expect(after.filter((id) => id.endsWith("-pg-stopped"))).to.deep.equal([]);
    }
    expect(after).to.include.members(before.slice(-1));
    await docker(["start", `${stack.prefix}-web`, `${stack.prefix}-worker`]);
    const next = await stack.ops(["backup", "--reason", "after-pg-stop"]);
    expect(next.code, next.stderr).to.equal(0);
    expect((await stack.ops(["verify", next.stdout.trim()])).code).to.equal(0);
  });

  it("6b. two operations at once: the second waits for the lock, or is refused naming the first", async function () {
    const first = stack.ops(["backup", "--reason", "first"]);
    // Until it holds the lock (its lock container runs): ~1 s alone, longer beside another test file.
    for (let i = 0; i < 120 && (await stack.lockContainer()) === ""; i += 1) {
      await new Promise((r) => setTimeout(r, 250));
    }
    await new Promise((r) => setTimeout(r, 500)); // its flock, right after it starts
    const refused = await stack.ops(["backup", "--reason", "second"], { EDMS_LOCK_WAIT: "0" });
    expect(refused.code, "busy: exit 75").to.equal(75);
    expect(refused.stderr).to.match(
      /Stack flt is busy: `backup --reason first` \(edms-ops \S+:\d+, since \S+\) holds its operation lock\. Nothing was changed\./,
    );
    const waited = await stack.ops(["backup", "--reason", "second"]);
    expect((await first).code).to.equal(0);
    expect(waited.code, waited.stderr).to.equal(0);
    expect(waited.stderr).to.match(
      /waiting for `backup --reason first`|backup \S+-second complete/,
    );
  });

  it("6c. retention keeps the newest `keep`; restoring the oldest backup at the limit keeps that very backup", async function () {
    for (let i = 0; i < 3; i += 1) {
      expect((await stack.ops(["backup", "--reason", `r${i}`])).code).to.equal(0);
    }
    const ids = await stack.backupIds();
    expect(ids).to.have.length(2);
    expect(ids[0]).to.match(/-r1$/);
    expect(ids[1]).to.match(/-r2$/);
    // The undo backup of this restore pushes r1 out of the newest two: it is in use, so it stays.
    const restore = await stack.ops(["restore", ids[0]]);
    expect(restore.code, restore.stderr).to.equal(0);
    expect(restore.stderr).to.contain(`retention: kept ${ids[0]}: in use by this operation`);
    expect(await stack.backupIds()).to.include(ids[0]);
    const up = await stack.up(); // web/worker back
    expect(up.error).to.equal(undefined);
  });

  /**
   * `edms-ops backup --reason <reason>` with `plant` run on the media volume (at /v) before it and `remove`
   * after it, whatever its outcome: the tests after this one back up this volume.
   */
  async function backupPlanted(plant: string, remove: string, reason: string) {
    await stack.onVolume(stack.mediaVolume, plant);
    try {
      return await stack.ops(["backup", "--reason", reason]);
    } finally {
      await stack.onVolume(stack.mediaVolume, remove);
    }
  }

  it("6j. a media file restic cannot read fails the backup: the file named, nothing listed, earlier backups kept; the manifest counts the media", async function () {
    const before = await stack.backupIds();
    // Root in the backup container reads any mode (CAP_DAC_OVERRIDE), so `chmod 000` is no fault. A path
    // longer than PATH_MAX is, deterministically: built from short relative parts, then moved into place;
    // restic's lstat of it fails with ENAMETOOLONG (find walks it with openat and counts it).
    const part = "d".repeat(200);
    const chain = Array(12).fill(part).join("/");
    const failed = await backupPlanted(
      `cd /v && mkdir -p "deep/${chain}" "tail/${chain}" && echo lost > "tail/${chain}/unread.bin" && mv tail "deep/${chain}/"`,
      "rm -rf /v/deep",
      "unreadable",
    );
    expect(failed.code, failed.stderr).to.equal(1);
    expect(failed.stderr).to.match(
      /Backup \S+-unreadable failed\. No snapshot was written; the \d+ earlier backup\(s\) are untouched\./,
    );
    expect(failed.stderr).to.match(
      /restic could not read 1 item\(s\), so the snapshot would miss them; it was forgotten:\n {2}- \/edms\/media\/deep\/d+…d+: lstat: (path|file name) too long/,
    );
    expect(failed.stderr).to.contain("Make them readable or remove them");
    expect(await stack.backupIds()).to.deep.equal(before);
    const snapshots = JSON.parse(await stack.restic(["snapshots", "--json"])) as unknown[];
    expect(snapshots, "the snapshot restic wrote is forgotten").to.have.length(before.length);

    // A compromised web moves documents into a folder named as the health probe's files (which backups leave
    // out whole), a symlink where they were so the app goes on: refused, nothing listed, until it is gone.
    const hidden = await backupPlanted(
      "mkdir -p /v/.health-x/contracts && echo signed > /v/.health-x/contracts/c.pdf && ln -s .health-x/contracts /v/contracts-link",
      "rm -rf /v/.health-x /v/contracts-link",
      "hidden",
    );
    expect(hidden.code, hidden.stderr).to.equal(1);
    expect(hidden.stderr).to.contain(
      `the media's top holds ".health-x": not a regular file, under the name the health probe's files take (.health-*), which backups leave out whole. Nothing was backed up.`,
    );
    expect(await stack.backupIds()).to.deep.equal(before);

    const ok = await stack.ops(["backup", "--reason", "readable", "--json"]);
    expect(ok.code, ok.stderr).to.equal(0);
    const { manifest } = JSON.parse(ok.stdout) as {
      manifest: { media: { files: number; bytes: number } };
    };
    const [files, bytes] = (
      await stack.onVolume(
        stack.mediaVolume,
        "find /v -name '.health-*' -prune -o -type f -printf '%s\\n' | awk '{n++; s+=$1} END {printf \"%d %.0f\", n, s}'",
      )
    )
      .split(" ")
      .map(Number);
    expect(files, "media files on the volume").to.be.at.least(40);
    expect(manifest.media).to.deep.equal({ files, bytes });
  });

  it("6k. django_migrations outside public is backed up (a stale copy in public ignored, the role's statement timeout too); an emptied database with history is a failure, restored by the named fix, which backs up the newer media first; a dropped database is restored too", async function () {
    // An app whose tables live in another schema on its search_path: backed up, not skipped. A stale copy
    // left in public (after the move) is not the one read; and a statement timeout the owner's role has in
    // this database (hardening) cancels none of edms-ops' own statements.
    await stack.psql(
      "CREATE SCHEMA app; ALTER TABLE django_migrations SET SCHEMA app; ALTER ROLE edms SET search_path = app, public; " +
        "CREATE TABLE public.django_migrations (LIKE app.django_migrations INCLUDING ALL); " +
        "INSERT INTO public.django_migrations (app, name, applied) VALUES ('stale', '0001_initial', now()); " +
        "ALTER ROLE edms IN DATABASE edms SET statement_timeout = '1ms';",
    );
    const onMaintenance = (sql: string) =>
      docker([
        "exec",
        stack.container("postgres"),
        "psql",
        "-U",
        "edms",
        "-d",
        "postgres",
        "-XAtqc",
        sql,
      ]);
    try {
      const moved = await stack.ops(["backup", "--reason", "other-schema", "--json"]);
      expect(moved.code, moved.stderr).to.equal(0);
      const { manifest } = JSON.parse(moved.stdout) as {
        manifest: { migrations: Record<string, string> };
      };
      expect(manifest.migrations).to.have.property("documents");
      expect(manifest.migrations).not.to.have.property("stale");
    } finally {
      // From the maintenance database, where the 1 ms timeout does not apply.
      await onMaintenance("ALTER ROLE edms IN DATABASE edms RESET statement_timeout;");
      await stack.psql(
        "DROP TABLE public.django_migrations; ALTER TABLE app.django_migrations SET SCHEMA public; ALTER ROLE edms RESET search_path; DROP SCHEMA app;",
      );
    }
    const good = await stack.ops(["backup", "--reason", "before-empty"]);
    expect(good.code, good.stderr).to.equal(0);
    const data = await stack.dbFingerprint();
    const before = await stack.backupIds();
    await docker(["stop", stack.container("web"), stack.container("worker")]);
    // A restart moves Docker's volume CreatedAt (the directory's ctime); the history must still count.
    await docker(["stop", stack.container("postgres")]);
    await stack.startPostgres();
    await stack.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    // An upload newer than the good backup: the restore replaces the media with the backup's.
    await stack.onVolume(
      stack.mediaVolume,
      "mkdir -p /v/late && printf 'newer' > /v/late/scan.pdf",
    );
    const empty = await stack.ops(["backup", "--reason", "emptied"]);
    const afterEmpty = await stack.backupIds();
    // The named fix first, so that a failed expectation below leaves the stack serving for 6d.
    const restore = await stack.ops(["restore", good.stdout.trim()]);
    const restored = await stack.dbFingerprint();
    const late = await stack.onVolume(stack.mediaVolume, "ls /v/late 2>/dev/null || true");
    // The live database dropped outright: the restore makes it again, empty, and brings the backup back.
    await onMaintenance("DROP DATABASE edms WITH (FORCE);");
    const fromDropped = await stack.ops(["restore", good.stdout.trim()]);
    const restoredAgain = await stack.dbFingerprint();
    const up = await stack.up();
    expect(empty.code, empty.stderr).to.equal(1);
    expect(empty.stderr, empty.stderr).to.match(
      /Nothing to back up, yet stack flt had data: its database \(volume e2e-flt_postgres_data\) has no Django schema .* while it has \d+ deployment\(s\) recorded onto it .*The database was emptied or replaced; no backup was taken/s,
    );
    expect(empty.stderr).to.contain("edms-ops restore <id> --stack flt");
    expect(afterEmpty).to.deep.equal(before);
    expect(restore.code, restore.stderr).to.equal(0);
    expect(restored).to.deep.equal(data);
    expect(late.trim(), "the media are the backup's").to.equal("");
    // No schema, but media: backed up first all the same, so the newer upload can come back.
    const undo = /To undo, run: edms-ops restore (\S+) /.exec(restore.stdout)?.[1];
    expect(undo, restore.stdout).to.match(/-pre-restore$/);
    expect(
      await stack.restic(["ls", "latest", "--tag", `id=${undo}`, "/edms/media/late"]),
    ).to.contain("/edms/media/late/scan.pdf");
    expect(fromDropped.code, fromDropped.stderr).to.equal(0);
    expect(fromDropped.stdout + fromDropped.stderr).to.contain(
      "the live database edms is gone (dropped?)",
    );
    expect(restoredAgain).to.deep.equal(data);
    expect(up.error).to.equal(undefined);
  });

  it("6d. a damaged pack in the repository: verify and restore refuse, data untouched, other backups fine", async function () {
    const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete as {
      id: string;
      snapshot: string;
    }[];
    const { id, snapshot } = listed[listed.length - 1];
    // Damage a blob this very backup's db.dump needs (found through its snapshot's trees and the
    // repository index), not "the largest pack", which may hold only blobs of other backups.
    const tree = async (
      treeId: string,
      name: string,
    ): Promise<{ subtree?: string; content?: string[] }> => {
      const nodes = JSON.parse(await stack.restic(["cat", "blob", treeId])).nodes as {
        name: string;
        subtree?: string;
        content?: string[];
      }[];
      const node = nodes.find((n) => n.name === name);
      expect(node, `${name} in tree ${treeId}`).to.not.equal(undefined);
      return node!;
    };
    const root = JSON.parse(await stack.restic(["cat", "snapshot", snapshot])).tree as string;
    const edms = await tree(root, "edms");
    const database = await tree(edms.subtree!, "database");
    const dump = await tree(database.subtree!, "db.dump");
    const blob = dump.content![0];
    const damage: string[] = [];
    for (const index of (await stack.restic(["list", "index"])).split("\n").filter(Boolean)) {
      const { packs } = JSON.parse(await stack.restic(["cat", "index", index])) as {
        packs: { id: string; blobs: { id: string; offset: number }[] }[];
      };
      for (const pack of packs) {
        for (const b of pack.blobs.filter((x) => x.id === blob)) {
          damage.push(
            `f=/v/restic/data/${pack.id.slice(0, 2)}/${pack.id}; chmod u+w $f; printf 'rotten' | dd of=$f bs=1 seek=${b.offset + 20} conv=notrunc 2>/dev/null`,
          );
        }
      }
    }
    expect(damage, `the pack of blob ${blob}`).to.have.length.at.least(1);
    await stack.onVolume(stack.backupsVolume, damage.join("\n"));
    const verify = await stack.ops(["verify", id]);
    expect(verify.code).to.equal(1);
    expect(verify.stderr).to.match(
      /FAILED verification:\n {2}- (media|db\.dump) cannot be read from the repository/,
    );
    const before = await stack.fingerprint();
    const ids = await stack.backupIds();
    const restore = await stack.ops(["restore", id]);
    expect(restore.code).to.equal(1);
    expect(restore.stderr).to.match(/failed verification; nothing was restored or changed/);
    // Refused by its test-restore beside the live database, before anything stopped or an undo backup
    // could push an older backup out.
    expect(restore.stderr).not.to.match(
      /stopped .* so nothing writes|backing up the current state/,
    );
    expect(await stack.backupIds(), "a refused restore takes no backup").to.deep.equal(ids);
    expect(await stack.fingerprint()).to.deep.equal(before);
    expect((await stack.ops(["status", "--json"])).code).to.equal(0);
  });
});

describe("e2e: backup on a full disk", function () {
  const stack = new TestStack("full", "dev", { "edms:version": "2.0.0" });
  // A small filesystem (6 MiB) behind the backups volume.
  const disk = new SmallDisk(stack, stack.backupsVolume, "6m");
  before(async () => {
    await stack.destroy();
    await disk.create();
    // 1.0.0 first, so that a rollback has somewhere to go (6h).
    expect((await stack.up("1.0.0")).error).to.equal(undefined);
    expect((await stack.up("2.0.0")).error).to.equal(undefined);
    await stack.seed("small", 1, 1024);
  });
  after(() => removeAll(stack, disk));

  it("6e. clear error, no snapshot written, earlier backups intact and verified", async function () {
    const first = await stack.ops(["backup", "--reason", "fits"]);
    expect(first.code, first.stderr).to.equal(0);
    await stack.seed("big", 4, 2 * 1024 * 1024);
    const full = await stack.ops(["backup", "--reason", "too-big"]);
    expect(full.code, full.stderr).to.equal(1);
    expect(full.stderr).to.match(
      /failed: no space left in the backups volume\. No snapshot was written; the 1 earlier backup\(s\) are untouched\./,
    );
    expect(full.stderr).to.contain(`Free space on the volume ${stack.backupsVolume}`);
    expect(await stack.backupIds()).to.deep.equal([first.stdout.trim()]);
    const verify = await stack.ops(["verify", first.stdout.trim()]);
    expect(verify.code, verify.stderr).to.equal(0);
  });

  it("6g. reset-app whose undo backup does not fit: refused with the reason, the app's data untouched, web/worker serving", async function () {
    const before = await stack.fingerprint();
    const reset = await stack.ops(["reset-app", "documents", "--confirm", stack.name]);
    expect(reset.code).to.equal(1);
    expect(reset.stderr).to.match(/no space left in the backups volume/);
    expect(await stack.fingerprint()).to.deep.equal(before);
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("6h. rollback whose backup first does not fit: refused with the reason, schema untouched, web/worker serving again", async function () {
    const before = await stack.fingerprint();
    const schema = await stack.documentsSchema();
    const rollback = await stack.ops(["rollback", "--previous", "--backup-first"]);
    expect(rollback.code).to.equal(1);
    expect(rollback.stderr).to.match(/no space left in the backups volume/);
    expect(await stack.documentsSchema()).to.deep.equal(schema);
    expect(await stack.fingerprint()).to.deep.equal(before);
    expect((await stack.ops(["health", "--wait", "60"])).code).to.equal(0);
  });

  it("6l. an export, plain or not, whose copy would not fit on the backups volume is refused up front: nothing copied anywhere", async function () {
    const [id] = await stack.backupIds();
    const to = fs.mkdtempSync(path.join(os.tmpdir(), "edms-export-full-"));
    try {
      for (const plain of [[], ["--plain"]]) {
        const exported = await stack.ops(["backups", "export", id, "--to", to, ...plain]);
        expect(exported.code, exported.stderr).to.equal(2);
        expect(exported.stderr).to.match(
          new RegExp(
            `Not enough free space for the export of ${id}: it needs about .* on the filesystem of the backups volume ${stack.backupsVolume} \\(.*\\), which has .* free\\. Nothing was copied or changed\\.`,
          ),
        );
      }
      expect(fs.readdirSync(to)).to.deep.equal([]);
      expect(
        await stack.onVolume(stack.backupsVolume, "ls -A /v | grep -c '^\\.export-' || true"),
      ).to.equal("0");
    } finally {
      fs.rmSync(to, { recursive: true, force: true });
    }
  });
});

describe("faults: restore and drill onto a nearly full filesystem", function () {
  const stack = new TestStack("fullpg", "dev", { "edms:version": "2.0.0" });
  // The postgres volume on a small host tmpfs (224 MiB).
  const disk = new SmallDisk(stack, `${stack.prefix}_postgres_data`, "224m");
  // A drill's scratch directory (`edms:backup.drillScratch`) on a 96 MiB one: the dump alone fits, the
  // restored database with its indexes and WAL would not.
  const scratchDisk = new SmallDisk(stack, `${stack.prefix}_drill_disk`, "96m");
  // The media volume on a 64 MiB one, holding a 24 MiB file.
  const mediaDisk = new SmallDisk(stack, stack.mediaVolume, "64m");
  // A drill's scratch directory with room for the drill (512 MiB), filled up while the drill runs.
  const fillingDisk = new SmallDisk(stack, `${stack.prefix}_filling_disk`, "512m");
  before(async () => {
    await stack.destroy();
    await disk.create();
    await scratchDisk.create();
    await mediaDisk.create();
    await fillingDisk.create();
    expect((await stack.up()).error).to.equal(undefined);
    await stack.seed("pg", 1, 24 * 1024 * 1024);
    await stack.psql(
      "CREATE TABLE ballast AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 500000) g; CHECKPOINT;",
    );
  });
  after(async () => {
    await removeAll(stack, disk);
    scratchDisk.remove();
    mediaDisk.remove();
    fillingDisk.remove();
  });

  it("a restore whose database would not fit beside the live one, or whose media would not fit, is refused up front: nothing stopped, nothing changed", async function () {
    const backup = await stack.ops(["backup", "--reason", "big"]);
    expect(backup.code, backup.stderr).to.equal(0);
    // The media lost since: the restore would bring back 24 MiB on a volume with less room than that and a margin.
    await stack.onVolume(stack.mediaVolume, "find /v -type f -name 'contract-*' -delete");
    const before = await stack.fingerprint();
    const restore = await stack.ops(["restore", backup.stdout.trim()]);
    expect(restore.code).to.equal(2);
    expect(restore.stderr).to.match(
      new RegExp(
        `Not enough free space for the restore of \\S+: it needs about .* on the filesystem of the postgres volume ${stack.prefix}_postgres_data \\(.*indexes and WAL\\), which has .* free; it needs about .* on the filesystem of the media volume ${stack.mediaVolume} \\(.*media beyond what is there\\), which has .* free\\. Nothing was stopped or changed\\.`,
      ),
    );
    expect(await stack.fingerprint()).to.deep.equal(before);
    const web = await docker(["inspect", "-f", "{{.State.Running}}", stack.container("web")]);
    expect(web.stdout.trim()).to.equal("true");
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("a drill whose scratch filesystem is nearly full is refused before it copies anything; with room there it passes", async function () {
    const backup = (await stack.backupIds()).pop() as string;
    const saved = stack.config["edms:backup"];
    const roomy = fs.mkdtempSync(path.join(os.tmpdir(), "edms-drill-scratch-"));
    try {
      stack.set("edms:backup", { ...(saved as object), drillScratch: scratchDisk.dir });
      const before = await stack.fingerprint();
      const drill = await stack.ops(["drill", backup]);
      expect(drill.code, drill.stderr).to.equal(2);
      expect(drill.stderr).to.match(
        new RegExp(
          `Not enough free space for the drill of ${backup}: it needs about .* on the filesystem of the drill's scratch media in ${scratchDisk.dir} .* and the drill's scratch database in ${scratchDisk.dir} \\(.*indexes and WAL\\), which has .* free\\. Nothing was copied or changed, and no drill was recorded\\.`,
        ),
      );
      expect(drill.stderr).to.contain("edms:backup.drillScratch");
      expect(fs.readdirSync(scratchDisk.dir), "scratch folders left behind").to.deep.equal([]);
      expect(await stack.fingerprint()).to.deep.equal(before);
      const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
      expect(status.backups.lastDrill, "a refused drill is no failed drill").to.equal(null);

      // The same drill with its scratch on a filesystem with room: database and media go there, and pass.
      stack.set("edms:backup", { ...(saved as object), drillScratch: roomy });
      const passed = await stack.ops(["drill", backup]);
      expect(passed.code, passed.stderr).to.equal(0);
      expect(fs.readdirSync(roomy), "scratch folders left behind").to.deep.equal([]);
    } finally {
      stack.set("edms:backup", saved);
      fs.rmSync(roomy, { recursive: true, force: true });
    }
  });

  it("a drill whose scratch filesystem fills up while it runs fails on the host, not on the backup: no damage claimed, nothing left, the stack untouched", async function () {
    const backup =
      (await stack.backupIds()).pop() ??
      (await stack.ops(["backup", "--reason", "fill"])).stdout.trim();
    const saved = stack.config["edms:backup"];
    const ballast = path.join(fillingDisk.dir, "ballast");
    try {
      stack.set("edms:backup", { ...(saved as object), drillScratch: fillingDisk.dir });
      const before = await stack.fingerprint();
      // The room check passed (the scratch server starts only after it). The disk fills but for 16 MiB once the
      // server answers (the database restore or the 24 MiB file runs out: a check fails), then once it exists
      // (its own files run out: the scratch server fails).
      for (const when of ["answering", "created"] as const) {
        const running = stack.ops(["drill", backup]);
        const filled = await fillWhileDrilling(stack, fillingDisk.dir, 16, when, running);
        expect(filled, `the scratch server was never seen ${when} while the drill ran`).to.equal(
          true,
        );
        const drill = await running;
        expect(drill.code, drill.stderr).to.equal(1);
        expect(drill.stderr).to.match(
          /stopped on the host, not on the backup: .*No space left on device/i,
        );
        expect(drill.stderr).to.contain("the host failed, not the backup");
        expect(drill.stderr).to.contain(`edms-ops drill ${backup} --stack ${stack.name}`);
        expect(drill.stderr, "a full disk is no damage").not.to.match(
          /Do not count on this backup|repair the repository/,
        );
        expect(fs.readdirSync(fillingDisk.dir), "scratch folders left behind").to.deep.equal([
          "ballast",
        ]);
        const { backups } = JSON.parse((await stack.ops(["status", "--json"])).stdout);
        expect(
          [backups.lastDrill.ok, backups.lastDrill.onHost, backups.newestGood],
          "the status says it was the host, and the backup still counts as good",
        ).to.deep.equal([false, true, backup]);
        const evidence = await stack.ops(["evidence"]);
        expect(evidence.stdout, "the security review's evidence says so too").to.contain(
          "could not finish (the host failed, not the backup)",
        );
        expect(evidence.stdout).to.match(/^ {4}HOST /m);
        fs.rmSync(ballast);
      }
      expect(await stack.fingerprint()).to.deep.equal(before);
      expect((await stack.ops(["health"])).code).to.equal(0);
    } finally {
      stack.set("edms:backup", saved);
      fs.rmSync(ballast, { force: true });
    }
  });
});

/**
 * Once the drill's scratch server exists (after the room check passed), or once it answers as well, fills
 * `dir` but for `keepMiB`. False when the drill ended first, or after 60 s.
 */
async function fillWhileDrilling(
  stack: TestStack,
  dir: string,
  keepMiB: number,
  when: "created" | "answering",
  drill: Promise<unknown>,
): Promise<boolean> {
  let ended = false;
  void drill.finally(() => (ended = true));
  const deadline = Date.now() + 60_000;
  while (!ended && Date.now() < deadline) {
    const [scratch] = (
      await docker(
        [
          "ps",
          "-q",
          "--filter",
          `label=edms.stack=${stack.name}`,
          "--filter",
          "label=edms.role=scratch-db",
        ],
        { allowFailure: true },
      )
    ).stdout.split("\n");
    const ready =
      scratch &&
      (when === "created" ||
        (
          await docker(["exec", scratch, "pg_isready", "-q", "-h", "127.0.0.1"], {
            allowFailure: true,
          })
        ).code === 0);
    if (ready) {
      // Instant on tmpfs, and no sparse file: the blocks are taken. All or nothing: while the drill writes,
      // what was free a moment ago may not be any more, so asked again with what is free now.
      for (let attempt = 0; attempt < 20; attempt += 1) {
        const { bavail, bsize } = fs.statfsSync(dir);
        const bytes = bavail * bsize - keepMiB * 1024 * 1024;
        const taken = spawnSync("fallocate", ["-l", String(bytes), path.join(dir, "ballast")]);
        if (bytes <= 0 || taken.status === 0) {
          break;
        }
      }
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

async function removeAll(stack: TestStack, disk: SmallDisk): Promise<void> {
  await stack.destroy();
  disk.remove();
}
