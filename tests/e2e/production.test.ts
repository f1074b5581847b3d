/**
 * Production: reset always refused with data untouched; two stacks copying to one append-only off-host
 * repository (a real restic REST server: `rclone serve restic` in a container); export/import; first-release
 * backups imported. Disaster recovery from the off-host repository is in tests/faults/disaster.test.ts.
 */
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import {
  offsiteEnv,
  offsiteRepository,
  onVolumes,
  startOffsiteServer,
  PROJECT_DIR,
  stopOffsiteServer,
  TestStack,
} from "../harness/stack";

describe("e2e: production refusals, off-host copies, export and import", function () {
  const stack = new TestStack("dr", "production", { "edms:version": "2.0.0" });
  const exportDir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-export-"));
  let fingerprint: Record<string, string>;

  before(async () => {
    await stack.destroy();
    await startOffsiteServer();
    // keep 2: what retention keeps beyond the newest two (imports, originals off-host) shows at once.
    stack.set("edms:backup", {
      keep: 2,
      offsite: { repository: { secure: await offsiteRepository("dr") } },
    });
    const { error } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    await stack.seed("d");
    fingerprint = await stack.fingerprint();
  });
  after(async () => {
    await stack.destroy();
    await stopOffsiteServer();
    fs.rmSync(exportDir, { recursive: true, force: true });
  });

  it("2. reset on production is refused whatever the flags; volumes and data untouched", async function () {
    const volumes = await stack.volumes();
    for (const args of [
      ["reset", "--confirm", "production"],
      ["reset", "--confirm", "dr"],
      ["reset"],
      ["reset", "--confirm", "dr", "--no-backup"],
    ]) {
      const result = await stack.ops(args);
      expect(result.code, args.join(" ")).to.equal(2);
      expect(result.stderr).to.match(
        /reset is refused on production \(stack `dr`\): production data is never reinitialised, whatever flags are given\. Nothing was changed\./,
      );
      expect(result.stderr).to.match(/restore a backup/);
    }
    expect(await stack.volumes()).to.deep.equal(volumes);
    expect(await stack.fingerprint()).to.deep.equal(fingerprint);
  });

  it("2b. a staging-labelled stack file pointed at production volumes is refused by the volumes' labels", async function () {
    const impostor = new TestStack("impostor", "staging", { "edms:namePrefix": stack.prefix });
    const result = await impostor.ops(["reset", "--confirm", "impostor"]);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/refused on production/);
    expect(await stack.fingerprint()).to.deep.equal(fingerprint);
  });

  it("restore on production needs --confirm production", async function () {
    const backup = await stack.ops(["backup", "--reason", "offsite"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const id = backup.stdout.trim();
    const result = await stack.ops(["restore", id]);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.contain(
      "restore on production replaces live data and needs `--confirm production`",
    );
    const wrong = await stack.ops(["restore", id, "--confirm", "dr"]);
    expect(wrong.code).to.equal(2);
    expect(wrong.stderr).to.contain("(got `dr`)");
  });

  it("two stacks copy to one append-only off-host server: the host never forgets there and no copy is refused; `backups prune --offsite` with credentials that may delete applies retention; a stale off-host lock shows and is cleared", async function () {
    const other = new TestStack("dr3", "staging", { "edms:version": "2.0.0" });
    await other.destroy();
    const appendOnly = await offsiteRepository("dr3");
    other.set("edms:backup", { keep: 1, offsite: { repository: { secure: appendOnly } } });
    expect((await other.up()).error).to.equal(undefined);
    try {
      const offsiteIds = async (s: TestStack) => {
        const listed = await s.ops(["backups", "list", "--offsite", "--json"]);
        expect(listed.code, listed.stderr).to.equal(0);
        return JSON.parse(listed.stdout).offsite.map((b: { id: string }) => b.id) as string[];
      };
      const drBefore = await offsiteIds(stack);
      // Both stacks back up and copy at the same time, three times: past dr3's keep of 1.
      for (let i = 0; i < 3; i += 1) {
        const runs = await Promise.all(
          [stack, other].map((s) => s.ops(["backup", "--reason", "both"])),
        );
        for (const run of runs) {
          expect(run.code, run.stderr).to.equal(0);
          expect(run.stderr).not.to.contain("off-host copy failed");
          expect(run.stderr).to.contain("off-host copy complete");
        }
      }
      const local = await other.backupIds();
      expect(local).to.have.length(1);
      const there = await offsiteIds(other);
      expect(there).to.have.length(3);
      expect(there).to.include(local[0]);
      expect(await offsiteIds(stack)).to.include.members(drBefore);
      expect((await offsiteIds(stack)).length).to.equal(drBefore.length + 3);
      const status = JSON.parse((await other.ops(["status", "--json"])).stdout).backups.offsite;
      expect(status).to.deep.include({ reachable: true, missing: [], locks: [], count: 3 });
      expect(status.lastCopy).to.deep.include({ ok: true, running: false, error: null });

      // Retention off the host: only with credentials from the environment, never the host's.
      const refused = await other.ops(["backups", "prune", "--offsite"]);
      expect(refused.code, refused.stderr).to.equal(2);
      expect(refused.stderr).to.contain("from the environment only");
      // Under their own names: EDMS_OFFSITE_REPOSITORY stays the append-only one, as in a shell that has both.
      const full = {
        ...offsiteEnv(other),
        EDMS_OFFSITE_DELETE_REPOSITORY: await offsiteRepository("dr3", true),
        EDMS_OFFSITE_DELETE_ENV: "{}",
      };
      // Where restic runs with them: the engine `--restic-host` names (the trusted machine's own; here the
      // same engine as the stack's). One that does not answer fails the command, and nothing is forgotten.
      const elsewhere = await other.ops(
        ["backups", "prune", "--offsite", "--restic-host", "unix:///nonexistent/docker.sock"],
        full,
      );
      expect(elsewhere.code, elsewhere.stderr).to.equal(1);
      expect(elsewhere.stderr).to.contain(
        "restic run by the Docker engine at unix:///nonexistent/docker.sock",
      );
      expect(await offsiteIds(other)).to.have.members(there);
      const pruned = await other.ops(
        ["backups", "prune", "--offsite", "--json", "--restic-host", "unix:///var/run/docker.sock"],
        full,
      );
      expect(pruned.code, pruned.stderr).to.equal(0);
      expect(JSON.parse(pruned.stdout).forgotten).to.have.members(
        there.filter((id) => id !== local[0]),
      );
      expect(await offsiteIds(other)).to.deep.equal(local);
      // The delete-capable credentials were not left on the host, by the prune or by a command after it
      // in the same environment (which stores the off-host credentials it is given).
      expect((await other.ops(["status"], full)).code).to.equal(0);
      expect(await other.onVolume(other.backupsVolume, "cat /v/.keys/offsite-repository")).to.equal(
        appendOnly,
      );

      // A stale exclusive lock off the host (shown by `status`/`health` with the command to clear it) is
      // proven by unit tests only: a restic killed mid-forget left one with restic 0.14; 0.18 ends first.
      const cleared = await other.ops(["backups", "unlock", "--offsite"]);
      expect(cleared.code, cleared.stderr).to.equal(0);
    } finally {
      await other.destroy();
    }
  });

  it("an exported backup is a checked restic repository; a tampered one and another stack's are refused on import", async function () {
    const [id] = await stack.backupIds();
    const exported = await stack.ops(["backups", "export", id, "--to", exportDir]);
    expect(exported.code, exported.stderr).to.equal(0);
    const dir = path.join(exportDir, id);
    expect(fs.readdirSync(dir)).to.include.members([
      "config",
      "data",
      "index",
      "keys",
      "snapshots",
      "edms-backup.json",
    ]);
    const again = await stack.ops(["backups", "import", dir]);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.contain("is already in");
    // Two exports to one folder at once: one repository, whole; the other refused, nothing merged into it.
    const twiceDir = path.join(exportDir, "twice");
    const both = await Promise.all(
      [0, 1].map(() => stack.ops(["backups", "export", id, "--to", twiceDir])),
    );
    expect(both.map((r) => r.code).sort(), both.map((r) => r.stderr).join("\n")).to.deep.equal([
      0, 2,
    ]);
    expect(both.find((r) => r.code === 2)?.stderr).to.contain("already exists");
    expect(fs.readdirSync(path.join(twiceDir, id, "keys"))).to.have.length(1);
    const twice = await stack.ops(["backups", "import", path.join(twiceDir, id)]);
    expect(twice.stderr).to.contain("is already in");

    const tampered = path.join(exportDir, "tampered", id);
    fs.cpSync(dir, tampered, { recursive: true });
    const packs = fs
      .readdirSync(path.join(tampered, "data"), { recursive: true })
      .map((f) => path.join(tampered, "data", String(f)))
      .filter((f) => fs.statSync(f).isFile())
      .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
    const pack = fs.readFileSync(packs[0]);
    pack[Math.floor(pack.length / 2)] ^= 0xff;
    fs.writeFileSync(packs[0], pack);
    const other = new TestStack("dr2", "staging", { "edms:version": "2.0.0" });
    await other.destroy();
    expect((await other.up()).error).to.equal(undefined);
    try {
      const foreign = await other.ops(["backups", "import", dir]);
      expect(foreign.code, "refused by its marker, before any engine call").to.equal(2);
      expect(foreign.stderr).to.contain(`holds a backup of stack ${stack.name}, not dr2`);
      // A marker edited to name this stack: the repository itself still tells (password or damage).
      const marker = path.join(tampered, "edms-backup.json");
      fs.writeFileSync(marker, fs.readFileSync(marker, "utf8").replace(`"${stack.name}"`, '"dr2"'));
      const corrupt = await other.ops(["backups", "import", tampered]);
      expect(corrupt.code).to.equal(1);
      expect(corrupt.stderr).to.match(/is a backup of another stack|is corrupt/);
      // A hostile folder: file names that tar would take as options. Refused, and nothing of it runs.
      const hostile = path.join(exportDir, "hostile", id);
      fs.cpSync(dir, hostile, { recursive: true });
      const witness = "edms-hostile-ran";
      fs.writeFileSync(path.join(hostile, "--checkpoint=1"), "");
      fs.writeFileSync(path.join(hostile, `--checkpoint-action=exec=touch ${witness}`), "");
      const refused = await other.ops(["backups", "import", hostile]);
      expect(refused.code).to.equal(2);
      expect(refused.stderr).to.contain("unexpected entries");
      for (const where of [hostile, exportDir, PROJECT_DIR, process.cwd()]) {
        expect(fs.existsSync(path.join(where, witness)), where).to.equal(false);
      }
      expect(await other.backupIds()).to.deep.equal([]);
    } finally {
      await other.destroy();
    }
  });

  it("first-release backups (<id>/manifest.json folders) stay listed and are imported with one command", async function () {
    const id = "2026-11-20T10-00-00Z-manual";
    // A backup exactly as the first release wrote it: pg_dump -Fc, a media tar, a format-1 manifest.
    const dump = await docker([
      "exec",
      stack.container("postgres"),
      "sh",
      "-c",
      `pg_dump -U edms -d edms -Fc > /var/lib/postgresql/db.dump && cat /var/lib/postgresql/db.dump | sha256sum | cut -d' ' -f1; stat -c %s /var/lib/postgresql/db.dump`,
    ]);
    const [dumpSum, dumpBytes] = dump.stdout.trim().split("\n");
    await docker([
      "cp",
      `${stack.container("postgres")}:/var/lib/postgresql/db.dump`,
      path.join(exportDir, "db.dump"),
    ]);
    // Every table's row count, as the first release's manifest held them.
    const tables = Object.fromEntries(
      (
        await stack.psql(
          "SELECT tablename, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM public.%I', tablename), false, true, '')))[1]::text FROM pg_tables WHERE schemaname = 'public';",
        )
      )
        .split("\n")
        .map((l) => l.split("|"))
        .map(([t, c]) => [t, Number(c)]),
    );
    const legacyScript = `mkdir -p /v/${id} && cp /in/db.dump /v/${id}/db.dump && tar -C /m -cf /v/${id}/media.tar . && sha256sum /v/${id}/media.tar | cut -d' ' -f1 && stat -c %s /v/${id}/media.tar`;
    const media = await onVolumes(
      {
        [stack.backupsVolume]: "/v",
        [`${stack.prefix}_media_files`]: "/m:ro",
        [exportDir]: "/in:ro",
      },
      legacyScript,
    );
    const [mediaSum, mediaBytes] = media.split("\n");
    const manifest = {
      format: 1,
      id,
      stack: "dr",
      environment: "production",
      reason: "manual",
      createdAt: "2026-11-20T10:00:00.000Z",
      completedAt: "2026-11-20T10:00:05.000Z",
      version: "2.0.0",
      postgresVolume: `${stack.prefix}_postgres_data`,
      files: {
        "db.dump": { sha256: dumpSum, bytes: Number(dumpBytes) },
        "media.tar": { sha256: mediaSum, bytes: Number(mediaBytes) },
      },
      tables,
      migrations: {},
      media: {},
    };
    await onVolumes(
      { [stack.backupsVolume]: "/v" },
      `cat > /v/${id}/manifest.json`,
      JSON.stringify(manifest),
    );

    const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout);
    expect(listed.legacy.map((l: { id: string }) => l.id)).to.deep.equal([id]);
    const early = await stack.ops(["verify", id]);
    expect(early.code).to.equal(2);
    expect(early.stderr).to.contain("backups import-legacy");
    const imported = await stack.ops(["backups", "import-legacy", "--delete-imported"]);
    expect(imported.code, imported.stderr).to.equal(0);
    expect(imported.stdout).to.contain(`imported ${id}`);
    const after = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout);
    expect(after.legacy).to.deep.equal([]);
    const entry = after.complete.find((b: { id: string }) => b.id === id);
    expect(entry).to.deep.include({ reason: "manual", release: "2.0.0" });
    expect(entry.time).to.match(/^2026-11-20T10:00:00/); // its original time, for retention's order
    const verify = await stack.ops(["verify", id]);
    expect(verify.code, verify.stderr).to.equal(0);

    // Imported backups are kept until forgotten explicitly: three backups past keep 2 leave it listed.
    expect(entry.imported).to.equal(true);
    for (let n = 0; n < 3; n += 1) {
      expect((await stack.ops(["backup"])).code).to.equal(0);
    }
    expect(await stack.backupIds()).to.include(id);
    const text = await stack.ops(["backups", "list"]);
    expect(text.stdout).to.match(new RegExp(`${id} .*imported \\(kept until`));
    const unknown = await stack.ops([
      "backups",
      "forget",
      "2020-01-01T00-00-00Z-manual",
      "--confirm",
      "production",
    ]);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.contain("No backup 2020-01-01T00-00-00Z-manual");
    const forgot = await stack.ops(["backups", "forget", id, "--confirm", "production"]);
    expect(forgot.code, forgot.stderr).to.equal(0);
    expect(await stack.backupIds()).to.not.include(id);
  });

  it("a snapshot dated after the host's clock is flagged and never counts as newest", async function () {
    const future = "2099-01-01T00-00-00Z-manual";
    await stack.restic([
      "backup",
      "--host",
      stack.name,
      "--time",
      "2099-01-01 00:00:00",
      "--tag",
      `edms,id=${future},reason=manual,release=2.0.0,stack=${stack.name}`,
      "/etc/hostname",
    ]);
    const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout);
    expect(listed.complete.pop().id).to.equal(future); // the listing's own order: by time
    expect(listed.futureDated).to.deep.equal([future]);
    const text = await stack.ops(["backups", "list"]);
    expect(text.stdout).to.match(new RegExp(`${future} .*DATED AFTER THE HOST'S CLOCK`));
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.backups.futureDated).to.deep.equal([future]);
    expect(status.backups.last).to.not.equal(future);
    expect(status.backups.newestGood).to.not.equal(future);
    // Retention keeps it but gives it none of the newest slots: two more backups, both kept.
    const taken: string[] = [];
    for (let n = 0; n < 2; n += 1) {
      const backup = await stack.ops(["backup"]);
      expect(backup.code, backup.stderr).to.equal(0);
      taken.push(backup.stdout.trim().split("\n").pop()!);
    }
    expect(await stack.backupIds()).to.include.members([future, ...taken]);
    const drill = await stack.ops(["drill", "latest"]);
    expect(drill.code, drill.stderr).to.equal(0);
    expect(drill.stdout + drill.stderr).to.contain(taken[1]);
    expect(drill.stdout + drill.stderr).to.not.contain(future);
    const forgot = await stack.ops(["backups", "forget", future, "--confirm", "production"]);
    expect(forgot.code, forgot.stderr).to.equal(0);
  });

  it("a production database lost and recreated empty is not started afresh: migrate refuses, naming what the stack had; a restore brings it back and the next deploy serves it", async function () {
    const backup = await stack.ops(["backup"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const id = backup.stdout.trim().split("\n").pop()!;
    const before = await stack.fingerprint();
    // The volume is protected in the state, not on the engine: gone, a refreshing `pulumi up` makes it anew.
    await docker(["rm", "-f", `${stack.prefix}-postgres`]);
    await docker(["volume", "rm", `${stack.prefix}_postgres_data`]);
    const { error } = await stack.up();
    expect(error?.message).to.match(/hook migrate failed/);
    expect(error?.message).to.match(
      /Production's database \(volume e2e-dr_postgres_data\) has no Django schema, yet stack dr had data: it has \d+ deployment\(s\) recorded onto it/,
    );
    expect(error?.message).to.contain("production is never reinitialised, so nothing was changed");
    expect(await stack.psql("SELECT to_regclass('django_migrations') IS NULL;")).to.equal("t");
    const restored = await stack.ops(["restore", id, "--confirm", "production"]);
    expect(restored.code, restored.stderr).to.equal(0);
    const again = await stack.up();
    expect(again.error, again.error?.message).to.equal(undefined);
    expect(await stack.fingerprint()).to.deep.equal(before);
  });
});
