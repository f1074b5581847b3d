/** The bench's EDMS-like data and timing helpers, shared by the backup/restore and the drill benches. */
import { spawn } from "child_process";
import { dockerRunArgs } from "../../ops/engine/dockerRun";
import { onVolumes, TestStack } from "../harness/stack";

export const ROWS = Number(process.env.EDMS_BENCH_ROWS ?? 1_000_000);
export const RUNS = 3;
/** The scratch server of the raw baselines. */
export const IMAGE = "edms-test/postgres:15";

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export async function median(fn: () => Promise<unknown>, runs = RUNS): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    times.push(await timed(fn));
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)];
}

/** A shell with the stack's backups volume at /backups and media volume at /media. */
export function shell(stack: TestStack, script: string, input?: NodeJS.ReadableStream) {
  return onVolumes(
    { [stack.backupsVolume]: "/backups", [`${stack.prefix}_media_files`]: "/media" },
    script,
    input,
  );
}

/**
 * Writes `count` small files (10–200 KiB) and `scans` scans (1–20 MiB) of random bytes under `dir` in the
 * media volume (sizes from a fixed sequence, so both runs get the same shape), and prints their names.
 */
export function mediaScript(dir: string, count: number, scans: number, seed: number): string {
  return `
mkdir -p /media/${dir}
awk -v n=${count} -v s=${scans} -v seed=${seed} 'BEGIN { srand(seed);
  for (i = 0; i < n; i++) printf "small %d %d\\n", i, int((10 + rand() * 190) * 1024);
  for (i = 0; i < s; i++) printf "scan %d %d\\n", i, int((1 + rand() * 19) * 1048576) }' |
while read kind i bytes; do
  f="/media/${dir}/\${kind}-${seed}-\${i}.pdf"
  head -c "$bytes" /dev/urandom > "$f"
  echo "${dir}/\${kind}-${seed}-\${i}.pdf"
done
chown -R 1000:1000 /media/${dir}`;
}

/** Files of one GiB: ~3,000 small ones (~300 MiB) and ~70 scans (~700 MiB). */
export const PER_GIB = { small: 3000, scans: 70 };

/** `write` runs the media script (default: into the media volume) and returns the names it printed. */
export async function seed(
  stack: TestStack,
  gib: number,
  write: (script: string) => Promise<string> = (script) => shell(stack, script),
): Promise<void> {
  const started = Date.now();
  const names = (
    await write(mediaScript("documents/bench", PER_GIB.small * gib, PER_GIB.scans * gib, 1))
  ).split("\n");
  await stack.psql(
    `INSERT INTO documents_document (title, owner_id, file, checksum, uploaded_at, slug) ` +
      `SELECT 'Scan ' || n, (SELECT min(id) FROM auth_user), n, '', now(), 'scan-' || ord FROM unnest(ARRAY['${names.join("','")}']) WITH ORDINALITY AS t(n, ord);` +
      `INSERT INTO systemsettings_systemsetting (key, value, updated_at) SELECT 'bench-' || g, md5(g::text) || md5((g*7)::text), now() FROM generate_series(1, ${ROWS}) g;`,
  );
  console.log(
    `  seeded ${names.length} media files and ${ROWS} rows in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
}

/** A dev stack deployed and seeded with `gib` GiB of media for a bench, and `ops()` that throws on failure. */
export async function benchStack(
  name: string,
  gib: number,
): Promise<{ stack: TestStack; ops: (args: string[]) => Promise<string> }> {
  const stack = new TestStack(name, "dev", {
    "edms:version": "2.0.0",
    "edms:backup": { beforeDeploy: false, keep: 50 },
  });
  await stack.destroy();
  const { error } = await stack.up();
  if (error) {
    throw error;
  }
  await seed(stack, gib);
  return { stack, ops: opsOrThrow(stack) };
}

/** `edms-ops <args> --stack <stack>` that throws on failure and returns its stdout. */
export function opsOrThrow(stack: TestStack): (args: string[]) => Promise<string> {
  return async (args) => {
    const r = await stack.ops(args);
    if (r.code !== 0) {
      throw new Error(`edms-ops ${args.join(" ")}: ${r.stderr}`);
    }
    return r.stdout.trim();
  };
}

/** A container streaming the raw baseline's dump (/backups/raw/db.dump) out of the backups volume. */
export function rawDumpReader(stack: TestStack) {
  return spawn(
    "docker",
    dockerRunArgs({
      image: IMAGE,
      remove: true,
      entrypoint: "cat",
      args: ["/backups/raw/db.dump"],
      mounts: [{ volume: stack.backupsVolume, path: "/backups", readOnly: true }],
    }),
  );
}
