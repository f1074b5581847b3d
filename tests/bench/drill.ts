/**
 * Benchmark: what `edms-ops drill` (and so the production deploy's preDeployDrill hook) costs, next to the
 * raw `pg_restore` of the same dump into a scratch server. Prints seconds and ratios; asserts nothing.
 *
 *   npm run bench:drill               1 GiB of media (EDMS_BENCH_GIB="1"), 1,000,000 rows
 *
 * Raw: the backup's own db.dump (taken out of the snapshot with `restic dump`) restored by `pg_restore
 * --single-transaction` into a scratch server of the same image; shown with and without the server's start.
 * Drill: the whole command (CLI start, lock, manifest, scratch server, streamed pg_restore with sha256, row
 * counts, migration state, media restore with --verify, media checksums, the release's container and its
 * `manage.py check` and `migrate --check`, the record). The first drill of a stack checksums every media
 * file (measured three times, the drill records removed before each); later ones a sample plus what changed.
 * D1 (issue 21): what a production deploy adds (the preDeployBackup and preDeployDrill hooks' commands, the
 * drill rehearsing the release's migrate) against raw `pg_dump` + scratch server start + `pg_restore`; a first
 * drill against raw `pg_restore` + `sha256sum` of every media file.
 */
import { docker } from "../../ops/engine/docker";
import { waitForScratch } from "../../ops/backup/scratchServer";
import { BACKUP_IMAGE, prepareEngine, scratchPostgresArgs } from "../harness/stack";
import { benchStack, median, mediaScript, RUNS, shell, timed } from "./data";

const SIZES = (process.env.EDMS_BENCH_GIB ?? "1").split(/\s+/).map(Number);

interface Check {
  name: string;
  seconds: number;
}

async function benchSize(gib: number) {
  console.log(`\n== ${gib} GiB of media`);
  const { stack, ops } = await benchStack(`drillbench${gib}`, gib);
  const id = await ops(["backup", "--reason", "bench"]);
  const [entry] = JSON.parse(await ops(["backups", "list", "--json"])).complete.filter(
    (b: { id: string }) => b.id === id,
  );
  // The very dump the drill restores, as a file for the raw baseline.
  await docker([
    "run",
    "--rm",
    "--network",
    "none",
    "--entrypoint",
    "sh",
    "-v",
    `${stack.backupsVolume}:/backups`,
    BACKUP_IMAGE,
    "-c",
    `mkdir -p /backups/raw && restic --no-cache -r /backups/restic --password-file /backups/.keys/restic-password dump ${entry.snapshot} /edms/database/db.dump > /backups/raw/db.dump && sync`,
  ]);
  const dumpMiB = Number(await shell(stack, "du -sk /backups/raw/db.dump | cut -f1")) / 1024;

  const scratch = `${stack.prefix}-rawscratch`;
  const pgRestoreOnly: number[] = [];
  const rawWithServer = await median(async () => {
    await docker(scratchPostgresArgs(scratch, ["-v", `${stack.backupsVolume}:/backups:ro`]));
    await waitForScratch(scratch);
    pgRestoreOnly.push(
      await timed(() =>
        docker(
          ["exec", scratch, "pg_restore", "-U", "edms", "-d", "edms", "--no-owner"].concat([
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "/backups/raw/db.dump",
          ]),
        ),
      ),
    );
    await docker(["rm", "-f", "-v", scratch]);
  });
  const rawRestore = pgRestoreOnly.sort((a, b) => a - b)[Math.floor(RUNS / 2)];
  // The raw side of D1: pg_dump of the live database (written inside its container, no stream).
  const pg = stack.container("postgres");
  const rawDump = await median(() =>
    docker([
      "exec",
      pg,
      "sh",
      "-c",
      "pg_dump -U edms -d edms -Fc -f /tmp/raw.dump && rm /tmp/raw.dump",
    ]),
  );
  // The raw side of a first drill's media: every file checksummed once.
  const rawChecksums = await median(() =>
    shell(stack, "find /media -type f -exec sha256sum {} + > /dev/null"),
  );

  const records: { seconds: number; checks: Check[] }[] = [];
  const drill = async (args: string[]) => {
    records.push(JSON.parse(await ops([...args, "--json"])));
  };
  // Each a first drill: the drill records of the runs before are removed first.
  const firstDrill = await median(async () => {
    await shell(stack, "rm -rf /backups/drills");
    await drill(["drill", id]);
  });
  const middle = (runs: typeof records) =>
    [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor(RUNS / 2)].checks;
  const firstChecks = middle(records.slice(0, RUNS));
  const laterDrill = await median(() => drill(["drill", id]));
  const laterChecks = middle(records.slice(RUNS));

  // What a production deploy adds, with 0.5 % of the media new: the two hooks' commands as the program runs
  // them (the drill rehearses the target release's migrate, here the release already running).
  await shell(stack, mediaScript("documents/deploy", Math.round(15 * gib), 1, 7));
  let backupId = "";
  const preDeployBackup = await timed(async () => {
    backupId = await ops([
      "backup",
      "--reason",
      "pre-deploy",
      "--target-version",
      "2.0.0",
      "--print-id",
    ]);
  });
  const hook = await timed(() => ops(["drill", "--backup-id", backupId, "--reason", "pre-deploy"]));
  await stack.destroy();
  return {
    gib,
    dumpMiB,
    rawRestore,
    rawWithServer,
    rawDump,
    rawChecksums,
    preDeployBackup,
    firstDrill,
    laterDrill,
    hook,
    firstChecks,
    laterChecks,
  };
}

async function main(): Promise<void> {
  prepareEngine();
  const f = (n: number) => `${n.toFixed(2)} s`;
  for (const gib of SIZES) {
    const r = await benchSize(gib);
    console.log(`\ndump ${r.dumpMiB.toFixed(0)} MiB; median of ${RUNS} unless noted`);
    console.log("| media | step | seconds | × raw pg_restore | × scratch server + pg_restore |");
    console.log("|---|---|---|---|---|");
    const row = (step: string, s: number) =>
      console.log(
        `| ${r.gib} GiB | ${step} | ${f(s)} | ${(s / r.rawRestore).toFixed(2)}× | ${(s / r.rawWithServer).toFixed(2)}× |`,
      );
    row("raw pg_restore of the same dump (server running)", r.rawRestore);
    row("raw scratch server start + pg_restore", r.rawWithServer);
    row("edms-ops drill, first (every media file checksummed)", r.firstDrill);
    row("edms-ops drill, later (sample of 20 + changed)", r.laterDrill);
    row("preDeployBackup hook after 0.5 % new media (1 run)", r.preDeployBackup);
    row("preDeployDrill hook after it, with the migrate rehearsal (1 run)", r.hook);
    const deployAdds = r.preDeployBackup + r.hook;
    const rawDeploy = r.rawDump + r.rawWithServer;
    const rawFirst = r.rawRestore + r.rawChecksums;
    const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
    console.log(
      `  D1 what a production deploy adds (backup + drill) ≤ 2× raw (pg_dump ${f(r.rawDump)} + scratch server + pg_restore ${f(r.rawWithServer)}): ` +
        `${f(deployAdds)} = ${(deployAdds / rawDeploy).toFixed(2)}× ${verdict(deployAdds <= 2 * rawDeploy)}`,
    );
    console.log(
      `  D1 first drill ≤ 1.5× raw (pg_restore ${f(r.rawRestore)} + sha256sum of the media ${f(r.rawChecksums)}): ` +
        `${f(r.firstDrill)} = ${(r.firstDrill / rawFirst).toFixed(2)}× ${verdict(r.firstDrill <= 1.5 * rawFirst)}`,
    );
    for (const [which, checks] of [
      ["first", r.firstChecks],
      ["later", r.laterChecks],
    ] as const) {
      console.log(
        `  ${which} drill by check: ${checks.map((c) => `${c.name} ${c.seconds.toFixed(2)} s`).join(", ")}`,
      );
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
