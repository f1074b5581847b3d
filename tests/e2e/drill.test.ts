/**
 * Restore drills on one production stack: the deploy drills its pre-deploy backup before migrate; a manual
 * drill checks what changed since the last one and runs an operator's check; scratch is gone after every
 * drill, live data untouched; and a backup whose data is damaged in the repository stops the deploy with
 * the old release serving.
 */
import { expect } from "chai";
import { docker } from "../../ops/engine/docker";
import {
  applier,
  offsiteRepository,
  OFFSITE_PASS,
  startOffsiteServer,
  stopOffsiteServer,
  TestStack,
  PRODUCTION_UPDATE_HOOKS,
} from "../harness/stack";

interface Record {
  id: string;
  backup: string;
  release: string | null;
  trigger: string;
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
  rehearsal: { name: string; ok: boolean; detail: string };
  media: {
    files: number;
    checksums: { [path: string]: string };
    changedSincePreviousDrill: number | null;
  };
}

describe("e2e: restore drills", function () {
  const stack = new TestStack("drill", "production");

  /** Every drill record in the backups volume, oldest first. */
  const records = async (): Promise<Record[]> => {
    const text = await stack.onVolume(
      stack.backupsVolume,
      "for f in $(ls /v/drills/*.json 2>/dev/null | sort); do cat \"$f\"; echo; echo '@@'; done",
    );
    return text
      .split("@@")
      .map((t) => t.trim())
      .filter(Boolean)
      .map((t) => JSON.parse(t) as Record);
  };
  /** Containers, networks and volumes a drill makes: none may outlive it. */
  const scratchLeft = async (): Promise<string[]> => {
    const filter = (role: string) => [
      "--filter",
      `label=edms.stack=${stack.name}`,
      "--filter",
      `label=edms.role=${role}`,
    ];
    const left: string[] = [];
    for (const role of ["drill-scratch", "scratch-db"]) {
      for (const kind of [
        ["ps", "-aq"],
        ["network", "ls", "-q"],
        ["volume", "ls", "-q"],
      ]) {
        left.push(...(await docker([...kind, ...filter(role)])).stdout.split("\n").filter(Boolean));
      }
    }
    return left;
  };

  let offsiteUrl: string;

  before(async () => {
    await stack.destroy();
    await startOffsiteServer();
    offsiteUrl = await offsiteRepository("drill");
    stack.set("edms:backup", { offsite: { repository: { secure: offsiteUrl } } });
  });
  after(async () => {
    await stack.destroy();
    await stopOffsiteServer();
  });

  it("a production deploy drills its pre-deploy backup between the backup and migrate", async function () {
    const first = await stack.up("1.0.0");
    expect(first.error, first.error?.message).to.equal(undefined);
    const drill = first.hooks.find((h) => h.name === "preDeployDrill");
    expect(drill?.stderr).to.match(/nothing to drill: database of drill has no schema yet/);
    await stack.seed("a");
    const live = await stack.fingerprint();

    const { error, hooks } = await stack.up("2.0.0");
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.deep.equal(PRODUCTION_UPDATE_HOOKS);
    const [record] = await records();
    const [backup] = await stack.backupIds();
    expect(record).to.deep.include({ backup, release: "1.0.0", trigger: "pre-deploy", ok: true });
    expect(record.checks.map((c) => [c.name, c.ok])).to.deep.equal([
      ["manifest", true],
      ["database restore", true],
      ["row counts", true],
      ["migration state", true],
      ["media restore", true],
      ["media checksums", true],
      ["release 1.0.0 container", true],
      ["manage.py check", true],
      ["migrate --check", true],
    ]);
    expect(record.rehearsal).to.deep.include({ name: "migration rehearsal (2.0.0)", ok: true });
    expect(record.rehearsal.detail).to.match(/^1 migration\(s\) of 2\.0\.0 applied in [\d.]+s/);
    // No drill before it: every media file is checked, each against the live file the backup read.
    expect(record.media.files).to.equal(3);
    expect(record.media.changedSincePreviousDrill).to.equal(null);
    const liveSums = live.media.split("\n").map((l) => l.split(/\s+/));
    expect(Object.entries(record.media.checksums).sort()).to.deep.equal(
      liveSums.map(([sum, file]) => [file.replace(/^\.\//, ""), sum]).sort(),
    );
    expect(await scratchLeft()).to.deep.equal([]);
  });

  it("a manual drill restores and checks only the files changed since the last passed one; --check gets them all; live data untouched", async function () {
    await stack.seed("b", 2);
    const odd = await stack.writeOddMedia();
    // Glob characters: a restic include pattern that did not escape them would not match this name.
    const glob = "odd/[x]*?.txt";
    await stack.onVolume(
      stack.mediaVolume,
      "printf 'glob' > '/v/odd/[x]*?.txt' && printf 'x' > /v/odd/xab.txt",
    );
    const backup = await stack.ops(["backup", "--reason", "manual"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const before = await stack.fingerprint();
    const partial = await stack.ops(["drill", "latest", "--sample", "0", "--json"]);
    expect(partial.code, partial.stderr).to.equal(0);
    const record = JSON.parse(partial.stdout) as Record;
    expect(record).to.deep.include({ backup: backup.stdout.trim(), release: "2.0.0", ok: true });
    // --sample 0: exactly the files written since the pre-deploy drill (two seeded, four with odd names,
    // two glob-named), the only ones restored once restic has read every blob back.
    expect(record.checks.find((c) => c.name === "media restore")?.detail).to.equal(
      "the data of 11 files read back by restic dump, 8 restored with --verify",
    );
    expect(record.media.files).to.equal(11);
    expect(record.media.changedSincePreviousDrill).to.equal(8);
    const checked = Object.keys(record.media.checksums);
    expect(checked).to.have.length(8);
    expect(checked).to.include.members([...odd, glob, "odd/xab.txt"]);
    expect(
      checked.filter((p) => /contract-b-[01]/.test(p)),
      checked.join(),
    ).to.have.length(2);

    const passed = await stack.ops([
      "drill",
      "latest",
      "--check",
      "python3 manage.py shell -c \"from documents.models import Document; n = Document.objects.count(); assert n == 5, n; print('documents', n)\"",
      "--json",
    ]);
    expect(passed.code, passed.stderr).to.equal(0);
    const checkRecord = JSON.parse(passed.stdout) as Record;
    expect(checkRecord.checks.find((c) => c.name === "--check")).to.deep.include({
      ok: true,
      detail: "documents 5",
    });
    // An operator's command may read any file: every one is restored.
    expect(checkRecord.checks.find((c) => c.name === "media restore")?.detail).to.equal(
      "11 files restored with restic --verify",
    );

    const failed = await stack.ops(["drill", "latest", "--check", "exit 3"]);
    expect(failed.code).to.equal(1);
    expect(failed.stdout).to.match(/FAIL --check/);
    expect(failed.stderr).to.match(/Drill of backup .* FAILED .*\n {2}- --check: exit 3/);
    const all = await records();
    expect(all.map((r) => r.ok)).to.deep.equal([true, true, true, false]);
    expect(await scratchLeft()).to.deep.equal([]);
    expect(await stack.fingerprint()).to.deep.equal(before);
  });

  it("evidence: settings, local and off-host snapshots, last check and drill, tool versions; no secret in it", async function () {
    const [newest] = (await stack.backupIds()).slice(-1);
    const verify = await stack.ops(["verify", newest]);
    expect(verify.code, verify.stderr).to.equal(0);
    const json = await stack.ops(["evidence", "--json"]);
    expect(json.code, json.stderr).to.equal(0);
    const text = await stack.ops(["evidence"]);
    expect(text.code, text.stderr).to.equal(0);
    const evidence = JSON.parse(json.stdout);
    expect(evidence).to.deep.include({ stack: "drill", environment: "production" });
    expect(evidence.backup).to.deep.include({
      beforeDeploy: true,
      drillBeforeDeploy: true,
      offsite: "(secret)",
    });
    expect(evidence.snapshots.local.count).to.equal(2);
    expect(evidence.snapshots.local.newest[0].id).to.equal(newest);
    expect(evidence.snapshots.offsite.count).to.equal(2);
    expect(evidence.lastRepositoryCheck).to.deep.include({ ok: true, during: `verify ${newest}` });
    expect(evidence.lastDrill).to.deep.include({ backup: newest, ok: false, trigger: "manual" });
    expect(evidence.tools.restic).to.match(/^restic 0\.\d+/);
    expect(evidence.tools.postgres).to.match(/^PostgreSQL 15/);
    expect(evidence.tools.django).to.match(/^\d+\.\d+/);
    expect(text.stdout).to.match(/last drill: .* FAILED/);
    // The real values: the database's superuser, application-role and backup-role passwords, Redis'
    // password, Django key, superuser and repository passwords, and the off-host repository's URL and
    // credential.
    const secrets = [...applier.secrets(stack.name), offsiteUrl, OFFSITE_PASS];
    expect(secrets).to.have.length(9);
    for (const secret of secrets) {
      for (const output of [json.stdout, json.stderr, text.stdout, text.stderr]) {
        expect(output.includes(secret), `a secret in evidence: ${secret.slice(0, 4)}…`).to.equal(
          false,
        );
      }
    }
  });

  it("a backup whose data is damaged in the repository fails its drill and stops the deploy; the old release keeps serving", async function () {
    // Bit rot in the packs of the media blobs. The next backup reuses those blobs (the files did not
    // change, restic deduplicates against its index), so the pre-deploy backup itself succeeds.
    const indexes = (await stack.restic(["list", "index"])).split("\n").filter(Boolean);
    const damage: string[] = [];
    for (const index of indexes) {
      const { packs } = JSON.parse(await stack.restic(["cat", "index", index])) as {
        packs: { id: string; blobs: { type: string; offset: number; length: number }[] }[];
      };
      for (const pack of packs) {
        for (const blob of pack.blobs.filter((b) => b.type === "data")) {
          damage.push(
            `printf 'rotten' | dd of=/v/restic/data/${pack.id.slice(0, 2)}/${pack.id} bs=1 seek=${blob.offset + 20} conv=notrunc 2>/dev/null`,
          );
        }
      }
    }
    expect(damage.length).to.be.at.least(5);
    await stack.onVolume(stack.backupsVolume, damage.join("\n"));
    const web = await stack.containerId("web");
    const migrations = await stack.psql("SELECT count(*) FROM django_migrations;");

    const { error, hooks } = await stack.up("3.0.0-broken");
    expect(error?.message).to.match(/hook preDeployDrill failed/);
    expect(hooks.map((h) => [h.name, h.code === 0])).to.deep.equal([
      ["preDeployBackup", true],
      ["preDeployDrill", false],
    ]);
    // The pre-deploy drill restores every file (its rehearsal's migrate may read any): restic's restore
    // itself meets the rot.
    expect(hooks[1].stdout).to.match(
      /FAIL media restore.*media cannot be restored from the repository/,
    );
    expect(hooks[1].stderr).to.match(/Drill of backup .*-pre-deploy FAILED/);
    expect(await stack.containerId("web")).to.equal(web);
    expect(await stack.psql("SELECT count(*) FROM django_migrations;")).to.equal(migrations);
    const health = await stack.ops(["health", "--json"]);
    expect(health.code, health.stderr).to.equal(0);
    // Health reports, without failing, the newest backup whose latest drill did not fail: the 2.0.0
    // pre-deploy one (the manual backup's latest drill failed its --check, the 3.0.0 one its restore).
    const freshness = JSON.parse(health.stdout).backup;
    const ids = await stack.backupIds();
    expect(ids).to.have.length(3);
    expect(freshness).to.deep.include({ newestGood: ids[0], failedDrills: [ids[2], ids[1]] });
    expect(freshness.ageHours).to.be.within(0, 1);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.runningVersion).to.equal("2.0.0");
    expect(status.backups).to.deep.include({ newestGood: ids[0] });
    expect(status.backups.lastDrill).to.deep.include({ backup: ids[2], ok: false });
    const last = (await records()).pop();
    expect(last).to.deep.include({ trigger: "pre-deploy", ok: false });
    expect(await scratchLeft()).to.deep.equal([]);
    // Nothing changed since the last passed drill: with --sample 0 no file is restored, and restic's read
    // of every blob is what finds the rot.
    const partial = await stack.ops(["drill", ids[2], "--sample", "0"]);
    expect(partial.code, partial.stdout).to.equal(1);
    expect(partial.stdout).to.match(
      /FAIL media restore.*media cannot be read back from the repository/,
    );
    expect(await scratchLeft()).to.deep.equal([]);
  });
});
