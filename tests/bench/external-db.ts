/**
 * Benchmark, issue 22: a stack on an external PostgreSQL (tests/harness/externalPostgres.ts: a real server
 * in its own container, TLS verify-full, an admin that is no superuser), same data as `npm run bench`
 * (EDMS_BENCH_ROWS rows, EDMS_BENCH_GIB GiB of media, default 1), against the raw tools in the same run.
 * Prints seconds and ratios; asserts nothing.
 *
 *   npm run bench:external
 *
 * Raw backup: `pg_dump -Fc` over the network (a client container on the server's network, TLS) streamed into
 * the backups volume + `tar` of the media + `sync`. Raw restore: `pg_restore --clean --single-transaction`
 * over the network + the media replaced from the tar + `sync`.
 *
 *   npm run bench:bucket      the same with the media in an S3 bucket (tests/harness/s3Server.ts, radosgw)
 *
 * Then the raw media half is `rclone sync` of the bucket's prefix into a folder of the backups volume (backup)
 * and of that folder back to the prefix (restore), then `sync`.
 */
import { ChildProcess, spawn } from "child_process";
import { pgCommand } from "../../ops/database/postgres";
import {
  externalServer,
  recreateExternalDatabase,
  startExternalPostgres,
  stopExternalPostgres,
  ADMIN_PASSWORD,
  EXTERNAL_HOST,
  EXTERNAL_NETWORK,
  externalCaPem,
} from "../harness/externalPostgres";
import { prepareEngine, PROJECT_DIR, TestStack } from "../harness/stack";
import {
  median,
  mediaScript,
  opsOrThrow,
  PER_GIB,
  rawDumpReader,
  ROWS,
  seed,
  shell,
  timed,
} from "./data";
import * as fs from "fs";
import * as path from "path";
import {
  bucketMediaConfig,
  makeBucket,
  s3,
  startS3Server,
  stopS3Server,
} from "../harness/s3Server";

const GIB = Number(process.env.EDMS_BENCH_GIB ?? 1);
/** `bench:bucket`: media in the test S3 server's bucket instead of the media volume. */
const BUCKET = process.env.EDMS_BENCH_MEDIA === "s3" ? "bench-media" : undefined;

/** The stack's prefix in the bucket, as rclone's `s3:` path. */
const prefixPath = (stack: TestStack) => `s3:${BUCKET}/${stack.prefix}`;

/** rclone against the bucket with the stack's backups volume at /backups and its media volume at /media. */
function bucketShell(stack: TestStack, args: string[]): Promise<string> {
  return s3(args, undefined, {
    [stack.backupsVolume]: "/backups",
    [`${stack.prefix}_media_files`]: "/media",
  });
}

/** Generated media (`script` writes them into the media volume) moved into the bucket: the app's uploads. */
async function intoBucket(stack: TestStack, script: string): Promise<string> {
  const names = await shell(stack, script);
  await bucketShell(stack, ["move", "/media", prefixPath(stack), "--transfers", "8"]);
  await shell(stack, "find /media -mindepth 1 -delete");
  return names;
}

/** pg_dump over the network into the backups volume, the media into a tar, then sync. */
async function rawBackup(stack: TestStack): Promise<void> {
  const dump = pgCommand(externalServer(), "pg_dump", ["-d", "edms", "-Fc"]);
  const child = spawn(dump.command, dump.args, { stdio: ["ignore", "pipe", "pipe"] });
  await Promise.all([
    succeeded(child, "raw pg_dump"),
    shell(stack, "mkdir -p /backups/raw && cat > /backups/raw/db.dump", child.stdout),
  ]);
  if (BUCKET) {
    await bucketShell(stack, ["sync", prefixPath(stack), "/backups/raw/media", "--transfers", "8"]);
    await shell(stack, "sync");
    return;
  }
  await shell(stack, "tar -C /media -cf /backups/raw/media.tar . && sync");
}

/** Resolves when `child` exits 0; rejects with its stderr otherwise. */
function succeeded(child: ChildProcess, what: string): Promise<void> {
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) =>
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${what} (exit ${code}): ${stderr.trim()}`)),
    ),
  );
}

/** pg_restore --clean over the network from the raw dump, the media replaced from the tar, then sync. */
async function rawRestore(stack: TestStack): Promise<void> {
  const reader = rawDumpReader(stack);
  const restore = pgCommand(externalServer(), "pg_restore", [
    "-d",
    "edms",
    "--clean",
    "--if-exists",
    "--single-transaction",
  ]);
  const writer = spawn(restore.command, restore.args, { stdio: ["pipe", "ignore", "pipe"] });
  reader.stdout.pipe(writer.stdin);
  await Promise.all([
    succeeded(reader, "reading the raw dump"),
    succeeded(writer, "raw pg_restore"),
  ]);
  if (BUCKET) {
    await bucketShell(stack, ["sync", "/backups/raw/media", prefixPath(stack), "--transfers", "8"]);
    return;
  }
  await shell(
    stack,
    "find /media -mindepth 1 -delete && tar -C /media -xpf /backups/raw/media.tar && sync",
  );
}

let change = 0;
/** 1 % of the media changes (as `npm run bench`), and 1 % of the settings rows. */
async function changeOnePercent(stack: TestStack): Promise<void> {
  change += 1;
  const script = mediaScript(
    `documents/change-${change}`,
    Math.round((PER_GIB.small * GIB) / 100),
    Math.max(1, Math.round((PER_GIB.scans * GIB) / 100)),
    100 + change,
  );
  await (BUCKET ? intoBucket(stack, script) : shell(stack, script));
  await stack.psql(
    `UPDATE systemsettings_systemsetting SET value = md5(value) WHERE id % 100 = ${change % 100};`,
  );
}

async function main(): Promise<void> {
  prepareEngine();
  await startExternalPostgres();
  await recreateExternalDatabase();
  if (BUCKET) {
    await startS3Server(EXTERNAL_NETWORK);
    await makeBucket(BUCKET);
  }
  const caFile = path.join(PROJECT_DIR, "bench-external-ca.pem");
  fs.writeFileSync(caFile, await externalCaPem());
  const stack = new TestStack("benchx", "dev", {
    "edms:version": "2.0.0",
    "edms:backup": { beforeDeploy: false, keep: 50 },
    "edms:database": {
      host: EXTERNAL_HOST,
      user: "edms_admin",
      password: { secure: ADMIN_PASSWORD },
      caCertificateFile: caFile,
      network: EXTERNAL_NETWORK,
    },
    ...(BUCKET
      ? {
          "edms:media": bucketMediaConfig(BUCKET, EXTERNAL_NETWORK),
        }
      : {}),
  });
  try {
    await stack.destroy();
    const { error } = await stack.up();
    if (error) {
      throw error;
    }
    await seed(stack, GIB, BUCKET ? (script) => intoBucket(stack, script) : undefined);
    const ops = opsOrThrow(stack);
    const raw = await median(() => rawBackup(stack));
    const ids: string[] = [];
    const first = await timed(async () => ids.push(await ops(["backup", "--reason", "full"])));
    const changed: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      await changeOnePercent(stack);
      changed.push(await timed(async () => ids.push(await ops(["backup", "--reason", "changed"]))));
    }
    const changedBackup = changed.sort((a, b) => a - b)[1];
    await rawBackup(stack);
    const rawRestoreTime = await median(() => rawRestore(stack));
    const newest = ids[ids.length - 1];
    const opsRestore = await median(() => ops(["restore", newest]));
    const f = (n: number) => n.toFixed(2).padStart(7);
    console.log(
      `\nexternal PostgreSQL over TLS, ${GIB} GiB of media${BUCKET ? " in an S3 bucket (radosgw)" : ""}, ${ROWS} rows; median of 3 unless noted`,
    );
    console.log("| step | raw tools | edms-ops | ratio |\n|---|---|---|---|");
    const row = (step: string, r: number, o: number) =>
      console.log(`| ${step} | ${f(r)} s | ${f(o)} s | ${(o / r).toFixed(2)}× |`);
    row("first full backup (1 run)", raw, first);
    row("backup after 1 % changed (vs raw full)", raw, changedBackup);
    row("restore (with verify + undo backup)", rawRestoreTime, opsRestore);
  } finally {
    await stack.destroy();
    await stopS3Server();
    await stopExternalPostgres();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
