/**
 * Benchmark: edms-ops backup / verify / restore (restic engine) against the raw tools doing the bare
 * minimum of the same work on the same EDMS-like data in the same run, at two media sizes so growth shows.
 * Prints seconds, ratios and the issue's targets; asserts nothing.
 *
 *   npm run bench                      1 GiB and 4 GiB of media (EDMS_BENCH_GIB="1 4"), 1,000,000 rows
 *
 * Data: many small files (10–200 KiB) and some scans (1–20 MiB), incompressible (urandom), in the media
 * volume; a documents row per file and EDMS_BENCH_ROWS settings rows in the database.
 * Raw baseline: `pg_dump -Fc` + `tar` into the backups volume, then `sync`; `pg_restore` into a scratch
 * server + `sha256sum` of the archive; `pg_restore --clean` + `tar -x` + `sync`.
 * restic alone: the same restic as the stacks' (their backup image), in one container, backing up the raw
 * dump and the media into a repository of its own after the same changes: the floor restic itself sets.
 */
import { ChildProcess, spawn } from "child_process";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import { dockerRunArgs } from "../../ops/engine/dockerRun";
import { CONFINEMENT } from "../../model/hardening";
import { waitForScratch } from "../../ops/backup/scratchServer";
import { REPO_ROOT } from "../harness/mocks";
import { prepareEngine, PROJECT_DIR, STACK_BACKUP_IMAGE, TestStack } from "../harness/stack";
import { measureCliStartup, printCliStartup } from "./cli-startup";
import {
  benchStack,
  IMAGE,
  median,
  mediaScript,
  PER_GIB,
  rawDumpReader,
  ROWS,
  RUNS,
  shell,
  timed,
} from "./data";

const SIZES = (process.env.EDMS_BENCH_GIB ?? "1 4").split(/\s+/).map(Number);

/**
 * Resolves when a streaming child exits 0; rejects with its stderr otherwise. A raw step whose producer
 * failed (e.g. pg_dump cut short) would otherwise be timed as if it had done the whole job.
 */
function succeeded(child: ChildProcess, what: string): Promise<void> {
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) =>
    child.on("close", (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${what} failed (exit ${code ?? signal}): ${stderr.trim()}`)),
    ),
  );
}

let change = 0;
/** 1 % of the media changes: half as new files, half by rewriting existing ones (same names). */
async function changeOnePercent(stack: TestStack, gib: number): Promise<void> {
  change += 1;
  const smallNew = Math.round((PER_GIB.small * gib) / 200);
  const scansNew = Math.max(1, Math.round((PER_GIB.scans * gib) / 200));
  await shell(stack, mediaScript(`documents/change-${change}`, smallNew, scansNew, 100 + change));
  // Rewrite about 0.5 % of the bytes in place: every 200th file of the original set.
  await shell(
    stack,
    `i=0; for f in /media/documents/bench/*; do i=$((i + 1)); [ $((i % 200)) -eq ${change % 200} ] || continue; s=$(stat -c %s "$f"); head -c "$s" /dev/urandom > "$f"; done`,
  );
}

/** restic alone (no edms-ops): `restic backup` of the raw dump and the media into /backups/raw-restic. */
function resticAlone(stack: TestStack, command: "init" | "backup"): Promise<unknown> {
  const restic = 'restic -q -r /backups/raw-restic --password-file /backups/raw-restic.pass "$@"';
  const script =
    command === "init"
      ? `rm -rf /backups/raw-restic; echo bench-only > /backups/raw-restic.pass; ${restic.replace('"$@"', "init")}`
      : `cd / && ${restic.replace('"$@"', "backup --host bench /backups/raw/db.dump /media")} && sync`;
  return docker(
    dockerRunArgs({
      image: STACK_BACKUP_IMAGE,
      remove: true,
      entrypoint: "sh",
      args: ["-euc", script],
      mounts: [
        { volume: stack.backupsVolume, path: "/backups" },
        { volume: `${stack.prefix}_media_files`, path: "/media", readOnly: true },
      ],
    }),
  );
}

interface SizeResult {
  gib: number;
  rawBackup: number;
  firstBackup: number;
  changedBackup: number;
  /** A backup with nothing changed since the one before (the fixed cost: dump, starts, listing, retention). */
  nothingBackup: number;
  rawVerify: number;
  opsVerify: number;
  rawRestore: number;
  opsRestore: number;
  fullRepoMiB: number;
  repoAfter14MiB: number;
  rawMiB: number;
  rssMiB: number;
  /** restic alone: first backup, median after 1 % changed, repository after 14 (MiB). */
  resticFirst: number;
  resticChanged: number;
  resticAfter14MiB: number;
}

async function benchSize(gib: number): Promise<SizeResult> {
  console.log(`\n== ${gib} GiB of media`);
  const { stack, ops } = await benchStack(`bench${gib}`, gib);
  const pg = stack.container("postgres");
  const repoMiB = async () => Number(await shell(stack, "du -sk /backups/restic | cut -f1")) / 1024;

  // Backup. Raw: pg_dump -Fc streamed into the volume, tar of media, sync.
  const rawBackup = await median(async () => {
    const dump = spawn("docker", ["exec", pg, "pg_dump", "-U", "edms", "-d", "edms", "-Fc"]);
    await Promise.all([
      succeeded(dump, "raw pg_dump"),
      shell(stack, "mkdir -p /backups/raw && cat > /backups/raw/db.dump", dump.stdout),
    ]);
    await shell(stack, "tar -C /media -cf /backups/raw/media.tar . && sync");
  });
  const rawMiB = Number(await shell(stack, "du -sk /backups/raw | cut -f1")) / 1024;
  await resticAlone(stack, "init");
  const resticFirst = await timed(() => resticAlone(stack, "backup"));
  const resticChangedRuns: number[] = [];
  const ids: string[] = [];
  const firstBackup = await timed(async () => ids.push(await ops(["backup", "--reason", "full"])));
  const fullRepoMiB = await repoMiB();
  console.log(
    `  first backup ${firstBackup.toFixed(2)} s, repository ${fullRepoMiB.toFixed(0)} MiB`,
  );

  // Backups after 1 % of the media changed (median of 3), then more until there are 14.
  const changed: number[] = [];
  for (let i = 0; i < 3; i += 1) {
    await changeOnePercent(stack, gib);
    changed.push(await timed(async () => ids.push(await ops(["backup", "--reason", "changed"]))));
    resticChangedRuns.push(await timed(() => resticAlone(stack, "backup")));
  }
  const resticChanged = resticChangedRuns.sort((a, b) => a - b)[1];
  const changedBackup = changed.sort((a, b) => a - b)[1];
  let rss = 0;
  while (ids.length < 14) {
    await changeOnePercent(stack, gib);
    if (ids.length === 13) {
      rss = await peakRss(stack);
      ids.push("rss");
    } else {
      ids.push(await ops(["backup", "--reason", "changed"]));
    }
    await resticAlone(stack, "backup");
  }
  const repoAfter14MiB = await repoMiB();
  const resticAfter14MiB =
    Number(await shell(stack, "du -sk /backups/raw-restic | cut -f1")) / 1024;
  await shell(stack, "rm -rf /backups/raw-restic /backups/raw-restic.pass");
  const nothingBackup = await median(async () =>
    ids.push(await ops(["backup", "--reason", "same"])),
  );

  // Verify. Raw: pg_restore into a scratch server + sha256sum of the archive.
  const scratch = `${stack.prefix}-rawscratch`;
  const rawVerify = await median(async () => {
    await docker(
      dockerRunArgs({
        image: IMAGE,
        name: scratch,
        detach: true,
        network: "none",
        env: ["POSTGRES_USER=edms", "POSTGRES_DB=edms", "POSTGRES_HOST_AUTH_METHOD=trust"],
        mounts: [{ volume: stack.backupsVolume, path: "/backups", readOnly: true }],
        // As verify's own scratch server runs: PostgreSQL's capabilities, its socket and data writable.
        confinement: { ...CONFINEMENT.postgres, readOnly: true },
        scratchPaths: ["/var/lib/postgresql/data"],
      }),
    );
    await waitForScratch(scratch);
    await docker([
      "exec",
      scratch,
      "pg_restore",
      "-U",
      "edms",
      "-d",
      "edms",
      "--no-owner",
      // Its grants name the application role, which a bare scratch server lacks.
      "--no-privileges",
      "/backups/raw/db.dump",
    ]);
    await docker(["exec", scratch, "sha256sum", "/backups/raw/media.tar"]);
    await docker(["rm", "-f", "-v", scratch]);
  });
  const newest = ids.filter((id) => id !== "rss").pop() as string;
  const opsVerify = await median(() => ops(["verify", newest]));

  // Restore. Raw: pg_restore --clean + media replaced from the tar + sync.
  const rawRestore = await median(async () => {
    const dump = rawDumpReader(stack);
    const read = succeeded(dump, "reading the raw dump");
    const restored = docker(
      [
        "exec",
        "-i",
        pg,
        "pg_restore",
        "-U",
        "edms",
        "-d",
        "edms",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
      ],
      { input: dump.stdout as never },
    );
    await Promise.all([read, restored]);
    await shell(
      stack,
      "find /media -mindepth 1 -delete && tar -C /media -xpf /backups/raw/media.tar && sync",
    );
  });
  const opsRestore = await median(() => ops(["restore", newest]));
  await stack.destroy();
  return {
    gib,
    rawBackup,
    firstBackup,
    changedBackup,
    nothingBackup,
    rawVerify,
    opsVerify,
    rawRestore,
    opsRestore,
    fullRepoMiB,
    repoAfter14MiB,
    rawMiB,
    rssMiB: rss / 1024,
    resticFirst,
    resticChanged,
    resticAfter14MiB,
  };
}

/** Peak RSS (KiB, GNU time) of one `edms-ops backup`. */
function peakRss(stack: TestStack): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("/usr/bin/time", [
      "-f",
      "%M",
      "node",
      path.join(REPO_ROOT, "ops/bin/edms-ops.js"),
      "backup",
      "--reason",
      "rss",
      "--stack",
      stack.name,
      "--project-dir",
      PROJECT_DIR,
    ]);
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", () => resolve(Number(err.trim().split("\n").pop())));
  });
}

async function main(): Promise<void> {
  printCliStartup(measureCliStartup());
  prepareEngine();
  const results: SizeResult[] = [];
  for (const gib of SIZES) {
    results.push(await benchSize(gib));
  }
  const f = (n: number) => n.toFixed(2).padStart(7);
  console.log(
    `\nmedian of ${RUNS} unless noted; raw = pg_dump -Fc + tar + sync / pg_restore + sha256sum / pg_restore --clean + tar -x + sync`,
  );
  console.log("| media | step | raw tools | edms-ops | ratio |\n|---|---|---|---|---|");
  for (const r of results) {
    const row = (step: string, raw: number, ops: number) =>
      console.log(
        `| ${r.gib} GiB | ${step} | ${f(raw)} s | ${f(ops)} s | ${(ops / raw).toFixed(2)}× |`,
      );
    row("first full backup (1 run)", r.rawBackup, r.firstBackup);
    row("backup after 1 % changed", r.rawBackup, r.changedBackup);
    row("backup with nothing changed", r.rawBackup, r.nothingBackup);
    row("verify", r.rawVerify, r.opsVerify);
    row("restore (with verify + undo backup)", r.rawRestore, r.opsRestore);
    console.log(
      `| ${r.gib} GiB | repository after 14 backups, 1 % change each | one full: ${r.fullRepoMiB.toFixed(0)} MiB (raw ${r.rawMiB.toFixed(0)} MiB) | ${r.repoAfter14MiB.toFixed(0)} MiB | ${(r.repoAfter14MiB / r.fullRepoMiB).toFixed(2)}× |`,
    );
    console.log(`| ${r.gib} GiB | edms-ops backup peak RSS | | ${r.rssMiB.toFixed(0)} MiB | |`);
  }
  console.log(
    "\nrestic alone (its own repository, same changes; edms-ops ÷ restic alone):\n| media | step | restic alone | edms-ops | ratio |\n|---|---|---|---|---|",
  );
  for (const r of results) {
    console.log(
      `| ${r.gib} GiB | first full backup | ${f(r.resticFirst)} s | ${f(r.firstBackup)} s | ${(r.firstBackup / r.resticFirst).toFixed(2)}× |`,
    );
    console.log(
      `| ${r.gib} GiB | backup after 1 % changed | ${f(r.resticChanged)} s | ${f(r.changedBackup)} s | ${(r.changedBackup / r.resticChanged).toFixed(2)}× |`,
    );
    console.log(
      `| ${r.gib} GiB | repository after 14 backups | ${r.resticAfter14MiB.toFixed(0)} MiB | ${r.repoAfter14MiB.toFixed(0)} MiB | ${(r.repoAfter14MiB / r.resticAfter14MiB).toFixed(2)}× |`,
    );
  }
  const [small, big] = [results[0], results[results.length - 1]];
  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  console.log("\ntargets:");
  for (const r of results) {
    console.log(
      `  T1 ${r.gib} GiB first full ≤ 1.5× raw: ${(r.firstBackup / r.rawBackup).toFixed(2)}× ${verdict(r.firstBackup <= 1.5 * r.rawBackup)}`,
    );
    const share = r.gib >= 4 ? 0.3 : 0.5;
    console.log(
      `  T2 ${r.gib} GiB backup after 1 % ≤ ${share}× raw full: ${(r.changedBackup / r.rawBackup).toFixed(2)}× ${verdict(r.changedBackup <= share * r.rawBackup)}`,
    );
    console.log(
      `  T2 ${r.gib} GiB backup with nothing changed ≤ 3 s at ${ROWS} rows: ${r.nothingBackup.toFixed(2)} s ${verdict(r.nothingBackup <= 3)}`,
    );
    console.log(
      `  T3 ${r.gib} GiB verify ≤ 1.5× raw: ${(r.opsVerify / r.rawVerify).toFixed(2)}× ${verdict(r.opsVerify <= 1.5 * r.rawVerify)}`,
    );
    console.log(
      `  T4 ${r.gib} GiB restore ≤ 2.0× raw: ${(r.opsRestore / r.rawRestore).toFixed(2)}× ${verdict(r.opsRestore <= 2 * r.rawRestore)}`,
    );
    console.log(
      `  T5 ${r.gib} GiB repository after 14 ≤ 1.3× one full: ${(r.repoAfter14MiB / r.fullRepoMiB).toFixed(2)}× ${verdict(r.repoAfter14MiB <= 1.3 * r.fullRepoMiB)}`,
    );
  }
  if (results.length < 2) {
    console.log("  T2 and T6 across sizes: one size run (EDMS_BENCH_GIB), nothing to compare");
    return;
  }
  console.log(
    `  T2 its time at ${big.gib} GiB ≤ 1.3× at ${small.gib} GiB: ${(big.changedBackup / small.changedBackup).toFixed(2)}× ${verdict(big.changedBackup <= 1.3 * small.changedBackup)}`,
  );
  console.log(
    `  T6 peak RSS at ${big.gib} GiB ≤ 1.1× at ${small.gib} GiB: ${big.rssMiB.toFixed(0)} / ${small.rssMiB.toFixed(0)} MiB = ${(big.rssMiB / small.rssMiB).toFixed(2)}× ${verdict(big.rssMiB <= 1.1 * small.rssMiB)}`,
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
