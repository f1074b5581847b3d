/**
 * Benchmark: edms-ops backup / verify / restore against the raw tools doing the bare minimum of the same work
 * on the same data in the same run (pg_dump + tar into the backups volume; pg_restore into a scratch
 * database; pg_restore --clean + tar extract). Prints seconds and ratios; asserts nothing.
 *
 *   npm run bench            (EDMS_BENCH_DOCS, EDMS_BENCH_DOC_KB, EDMS_BENCH_ROWS to size the data)
 */
import { spawn } from "child_process";
import * as path from "path";
import { docker } from "../../ops/lib/docker";
import { waitForScratch } from "../../ops/lib/verify";
import { REPO_ROOT } from "../support/program";
import { prepareEngine, PROJECT_DIR, TestStack } from "../e2e/support";

const DOCS = Number(process.env.EDMS_BENCH_DOCS ?? 200);
const DOC_KB = Number(process.env.EDMS_BENCH_DOC_KB ?? 256);
const ROWS = Number(process.env.EDMS_BENCH_ROWS ?? 200000);
const RUNS = 3;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function median(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i += 1) {
    times.push(await timed(fn));
  }
  return times.sort((a, b) => a - b)[Math.floor(RUNS / 2)];
}

async function main(): Promise<void> {
  prepareEngine();
  const stack = new TestStack("bench", "dev", {
    "edms:version": "2.0.0",
    "edms:backup": { beforeDeploy: false, keep: 50 },
  });
  await stack.destroy();
  const { error } = await stack.up();
  if (error) {
    throw error;
  }
  console.log(`seeding ${DOCS} documents of ${DOC_KB} KiB and ${ROWS} settings rows`);
  for (let done = 0; done < DOCS; done += 50) {
    await stack.seed(`b${done}`, Math.min(50, DOCS - done), DOC_KB * 1024);
  }
  await stack.psql(
    `INSERT INTO systemsettings_systemsetting (key, value, updated_at) SELECT 'bench-' || g, md5(g::text) || md5((g*7)::text), now() FROM generate_series(1, ${ROWS}) g;`,
  );
  const pg = stack.container("postgres");
  const mounts = [
    "-v",
    `${stack.backupsVolume}:/backups`,
    "-v",
    `${stack.prefix}_media_files:/media:ro`,
  ];
  const raw = (script: string, input?: NodeJS.ReadableStream) =>
    docker(
      [
        "run",
        "--rm",
        "-i",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        ...mounts,
        "edms-test/postgres:15",
        "-c",
        script,
      ],
      input ? { input: input as never } : {},
    );

  const ops = async (args: string[]) => {
    const r = await stack.ops(args);
    if (r.code !== 0) {
      throw new Error(r.stderr);
    }
    return r.stdout.trim();
  };

  // Backup: raw = pg_dump -Fc streamed into the volume + tar of media; edms-ops adds snapshot counts,
  // checksums, media checksums from the archive, manifest, rename and prune.
  const rawBackup = await median(async () => {
    const dump = spawn("docker", ["exec", pg, "pg_dump", "-U", "edms", "-d", "edms", "-Fc"]);
    await raw("mkdir -p /backups/raw && cat > /backups/raw/db.dump", dump.stdout);
    await raw("tar -C /media -cf /backups/raw/media.tar .");
  });
  const ids: string[] = [];
  const opsBackup = await median(async () => ids.push(await ops(["backup", "--reason", "bench"])));
  const sizes = (await raw("du -sk /backups/raw | cut -f1")).stdout.trim();

  // Verify: raw = pg_restore of the dump into a scratch server; edms-ops adds checksums, counts, media.
  const scratch = `${stack.prefix}-rawscratch`;
  const rawVerify = await median(async () => {
    await docker([
      "run",
      "-d",
      "--name",
      scratch,
      "--network",
      "none",
      "-e",
      "POSTGRES_USER=edms",
      "-e",
      "POSTGRES_DB=edms",
      "-e",
      "POSTGRES_HOST_AUTH_METHOD=trust",
      "-v",
      `${stack.backupsVolume}:/backups:ro`,
      "edms-test/postgres:15",
    ]);
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
      "/backups/raw/db.dump",
    ]);
    await docker(["rm", "-f", "-v", scratch]);
  });
  const opsVerify = await median(() => ops(["verify", ids[ids.length - 1]]));

  // Restore: raw = pg_restore --clean + media extract; edms-ops adds verify, a backup first, stop/start, checks.
  const rawRestore = await median(async () => {
    const dump = spawn("docker", [
      "run",
      "--rm",
      "-v",
      `${stack.backupsVolume}:/backups:ro`,
      "--entrypoint",
      "cat",
      "edms-test/postgres:15",
      "/backups/raw/db.dump",
    ]);
    await docker(
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
    await docker([
      "run",
      "--rm",
      "--user",
      "0",
      "--entrypoint",
      "sh",
      "-v",
      `${stack.backupsVolume}:/backups:ro`,
      "-v",
      `${stack.prefix}_media_files:/media`,
      "edms-test/postgres:15",
      "-c",
      "find /media -mindepth 1 -delete && tar -C /media -xpf /backups/raw/media.tar",
    ]);
  });
  const opsRestore = await median(() => ops(["restore", ids[0]]));

  // Memory: the CLI streams dumps and archives between containers, so its own peak RSS should not grow with
  // the data. GNU time reports it (kilobytes).
  const rss = await new Promise<string>((resolve) => {
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
    child.on("close", () => resolve(err.trim().split("\n").pop() ?? "?"));
  });

  const row = (what: string, rawS: number, opsS: number) =>
    console.log(
      `${what.padEnd(8)} raw ${rawS.toFixed(2).padStart(7)} s   edms-ops ${opsS.toFixed(2).padStart(7)} s   ratio ${(opsS / rawS).toFixed(2)}x`,
    );
  console.log(
    `\ndata: ${DOCS} documents × ${DOC_KB} KiB, ${ROWS} extra rows; raw backup ${Math.round(Number(sizes) / 1024)} MiB; median of ${RUNS}`,
  );
  row("backup", rawBackup, opsBackup);
  row("verify", rawVerify, opsVerify);
  row("restore", rawRestore, opsRestore);
  console.log(
    `edms-ops backup peak RSS: ${Math.round(Number(rss) / 1024)} MiB (raw backup data ${Math.round(Number(sizes) / 1024)} MiB)`,
  );
  await stack.destroy();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
