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
 * file; later ones a sample plus what changed.
 */
import { docker } from "../../ops/engine/docker";
import { waitForScratch } from "../../ops/backup/verify";
import { BACKUP_IMAGE, prepareEngine } from "../harness/stack";
import { benchStack, IMAGE, median, mediaScript, RUNS, shell, timed } from "./data";

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
    await docker(
      ["run", "-d", "--name", scratch, "--network", "none"].concat(
        [
          "-e",
          "POSTGRES_USER=edms",
          "-e",
          "POSTGRES_DB=edms",
          "-e",
          "POSTGRES_HOST_AUTH_METHOD=trust",
        ],
        ["-v", `${stack.backupsVolume}:/backups:ro`, IMAGE],
      ),
    );
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

  const records: { seconds: number; checks: Check[] }[] = [];
  const drill = async (args: string[]) => {
    records.push(JSON.parse(await ops([...args, "--json"])));
  };
  const firstDrill = await timed(() => drill(["drill", id]));
  const firstChecks = records[0].checks;
  const laterDrill = await median(() => drill(["drill", id]));
  const laterChecks = records.sort((a, b) => a.seconds - b.seconds)[Math.floor(records.length / 2)]
    .checks;

  // What a deploy adds: the hook's command after a pre-deploy backup, with 0.5 % of the media new.
  await shell(stack, mediaScript("documents/deploy", Math.round(15 * gib), 1, 7));
  await ops(["backup", "--reason", "pre-deploy", "--target-version", "9.9.9"]);
  const hook = await timed(() =>
    ops(["drill", "latest", "--target-version", "9.9.9", "--reason", "pre-deploy"]),
  );
  await stack.destroy();
  return {
    gib,
    dumpMiB,
    rawRestore,
    rawWithServer,
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
    row("edms-ops drill, first (every media file checksummed, 1 run)", r.firstDrill);
    row("edms-ops drill, later (sample of 20 + changed)", r.laterDrill);
    row("preDeployDrill hook after 0.5 % new media (1 run)", r.hook);
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
