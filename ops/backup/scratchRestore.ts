/**
 * A backup's dump restored into a scratch server (verify's test-restore, a drill's database), with its owners
 * and grants, and the database's own state applied as a restore applies it (older backups: no owners, no
 * grants, one transaction).
 *
 * The dump goes through a file on the session's stage (SCRATCH_DUMP), which every scratch server mounts
 * read-only: restic writes it in the session's container, the scratch server checks its sha256 against the
 * manifest and only then runs pg_restore of the file. Streamed through two `docker exec`s instead, hashed on
 * the way, a 115 MiB dump cost about 3 s of CPU in the engine's copies, and pg_restore of its 1M rows took
 * 9.2-10.5 s beside a drill's media restore against 7.3-8.9 s from the file. A drill whose scratch is
 * `edms:backup.drillScratch` streams it as before: the stage is on Docker's data root, which that setting
 * keeps the drill's copies off.
 */
import { createHash } from "crypto";
import { Transform } from "stream";
import { POSTGRES_DB, POSTGRES_USER } from "../../model/containers";
import { failure } from "../core/errors";
import { FREE_SCRATCH_ROOM, hostFailure, hostFaultLine, LOST_SERVER } from "../core/hostFault";
import { lastLine } from "../core/log";
import { applyDatabaseStateSql, createMissingRoles } from "../database/dbstate";
import { psql } from "../database/postgres";
import { containerServer } from "../database/server";
import { docker, pipeCommands, RunResult } from "../engine/docker";
import type { OpsSession } from "../engine/session";
import { SHA256_TOOL } from "../engine/toolbox";
import { Manifest } from "../store/manifest";
import { BackupEntry, DUMP_FILE, STAGE_DIR } from "../store/restic";

/** Where restoreIntoScratch puts the snapshot's dump: the session's stage, which every scratch server mounts. */
export const SCRATCH_DUMP = `${STAGE_DIR}/scratch.dump`;

/**
 * The scratch server's half ($1 the staged dump, $2 its sha256 as recorded, then pg_restore's flags): prints
 * the file's sha256, and restores it only when that is the one recorded.
 */
export const SCRATCH_RESTORE_SCRIPT = [
  SHA256_TOOL,
  "f=$1; want=$2; shift 2",
  `sum=$($H < "$f" | cut -d' ' -f1)`,
  `printf '%s\\n' "$sum"`,
  '[ "$sum" = "$want" ] || exit 0',
  `exec pg_restore -U ${POSTGRES_USER} -d ${POSTGRES_DB} --exit-on-error "$@" "$f"`,
].join("\n");

/** How restoreIntoScratch gets the dump. */
export type ScratchDump =
  /** Being staged (stageDump); its caller removes it (removeStagedDump). */
  | Promise<string[]>
  /** Streamed, nothing written on the stage (a drill whose scratch is `edms:backup.drillScratch`). */
  | "stream";

/**
 * The dump restored into the scratch server `name`: the problems found (unreadable, checksum, pg_restore),
 * none when it restored as recorded. Throws when the scratch server or the stage fails it, which is no fault
 * of the backup. By default the dump is staged and removed here.
 */
export async function restoreIntoScratch(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  name: string,
  dump?: ScratchDump,
): Promise<string[]> {
  if (dump === undefined) {
    const own = stageDump(session, entry);
    try {
      return await restoreIntoScratch(session, entry, manifest, name, own);
    } finally {
      await removeStagedDump(session, own);
    }
  }
  const state = manifest.databaseState;
  // The roles the dump names are created (NOLOGIN) so that owners and grants restore as recorded. Older
  // backups record none: no owners and no grants then, as the production server's roles need not exist here.
  if (state) {
    await createMissingRoles(
      session.settings,
      state.roles,
      containerServer(name),
      "the backup names it",
    );
  }
  const problems =
    dump === "stream"
      ? await streamIntoScratch(session, entry, manifest, name)
      : await restoreStaged(manifest, name, dump);
  if (problems.length) {
    return problems;
  }
  if (state) {
    await psql(
      session.settings,
      applyDatabaseStateSql(state, POSTGRES_DB),
      containerServer(name),
      {},
      "postgres",
    );
  }
  return [];
}

/** pg_restore's flags: one transaction only for backups without the database's state (see below). */
function restoreFlags(manifest: Manifest): string[] {
  // One transaction would lock every large object whose owner it sets: lock memory runs out.
  return manifest.databaseState ? [] : ["--no-owner", "--no-privileges", "--single-transaction"];
}

/** The session's options for pg_restore in the scratch server. */
function restoreEnv(manifest: Manifest): string[] {
  return manifest.databaseState ? ["-e", "PGOPTIONS=-c synchronous_commit=off"] : [];
}

/**
 * The snapshot's dump put on the session's stage (SCRATCH_DUMP, root's only) for a scratch server to
 * restore; the backup's problems (none: it is there). Rejects when the stage cannot hold it. Started before
 * the scratch server is up, the two overlap.
 */
export function stageDump(session: OpsSession, entry: BackupEntry): Promise<string[]> {
  const staged = session
    .exec(
      `umask 077; : > "$2" || exit ${STAGE_UNWRITABLE}; lrestic dump "$1" ${DUMP_FILE} > "$2"`,
      [entry.snapshot, SCRATCH_DUMP],
      { allowFailure: true },
    )
    .then((dumped) => {
      if (dumped.code === 0) {
        return [];
      }
      if (dumped.code === STAGE_UNWRITABLE || hostFaultLine(dumped.stderr)) {
        throw hostFailure(
          `the dump could not be written on the session's stage (${SCRATCH_DUMP}): ${lastLine(dumped.stderr) || `exit ${dumped.code}`}`,
          "Free space on Docker's data root (`docker system df` shows what uses it) and check that it is writable, then retry.",
        );
      }
      return [`db.dump cannot be read from the repository: ${lastLine(dumped.stderr)}`];
    });
  // Awaited only once the scratch server is up: a failure meanwhile is not an unhandled rejection.
  staged.catch(() => undefined);
  return staged;
}

/** stageDump's exit when the stage takes no file at all (a permission, a read-only or full filesystem). */
const STAGE_UNWRITABLE = 90;

/** Staged dumps removed already (removeStagedDump), or being removed. */
const removals = new WeakMap<Promise<string[]>, Promise<void>>();

/** Removes the staged dump once `staged` (stageDump) has ended, whatever became of it; once, however often asked. */
export function removeStagedDump(session: OpsSession, staged: Promise<string[]>): Promise<void> {
  let removal = removals.get(staged);
  if (!removal) {
    removal = staged
      .catch(() => undefined)
      .then(async () => {
        await session.exec(`rm -f "$1"`, [SCRATCH_DUMP], { allowFailure: true });
      });
    removals.set(staged, removal);
  }
  return removal;
}

/** The staged dump checked and restored by the scratch server `name`: the problems found. */
async function restoreStaged(
  manifest: Manifest,
  name: string,
  staged: Promise<string[]>,
): Promise<string[]> {
  const unreadable = await staged;
  if (unreadable.length) {
    return unreadable;
  }
  const restored = await docker(
    [
      "exec",
      // Root, whatever user the image runs as: the staged file is root's only.
      ...["-u", "0"],
      ...restoreEnv(manifest),
      name,
      "sh",
      "-c",
      SCRATCH_RESTORE_SCRIPT,
      "edms-scratch-restore",
      SCRATCH_DUMP,
      manifest.database.sha256,
      ...restoreFlags(manifest),
    ],
    { allowFailure: true },
  );
  const sum = restored.stdout.split("\n")[0];
  if (!/^[0-9a-f]{64}$/.test(sum)) {
    // No digest at all: the scratch server or the stage failed, not the backup (restic wrote the file whole).
    throw failure(
      `the staged dump could not be checked in the scratch server ${name} (exit ${restored.code}): ${lastLine(restored.stderr) || "no output"}`,
      "Check that the postgres image runs on this host (`docker logs` of the scratch container) and that Docker's data root has room, then retry.",
    );
  }
  if (sum !== manifest.database.sha256) {
    return ["db.dump: sha256 does not match the manifest (file changed or corrupted)"];
  }
  return restored.code === 0 ? [] : [await restoreFailed(restored, name)];
}

/**
 * The dump did not restore: the backup's problem, unless the host stopped it (then thrown, with the scratch
 * server's own reason when it went away: a full disk ends it with a PANIC the client only sees as a lost
 * connection).
 */
async function restoreFailed(restored: RunResult, name: string): Promise<string> {
  let fault = hostFaultLine(restored.stderr);
  if (!fault && LOST_SERVER.test(restored.stderr)) {
    // Only the server's own reason makes it the host's: a crash the data caused stays the backup's problem.
    const logs = await docker(["logs", "--tail", "50", name], { allowFailure: true });
    fault = hostFaultLine(`${logs.stderr}\n${logs.stdout}`);
  }
  if (fault) {
    throw hostFailure(
      `The test-restore into the scratch server ${name} stopped on the host, not on the backup: ${fault}`,
      FREE_SCRATCH_ROOM,
    );
  }
  return `db.dump does not restore: ${restored.stderr.trim().split("\n").slice(-2).join(" ")}`;
}

/** The dump streamed into the scratch server's pg_restore, hashed on the way: the problems found. */
async function streamIntoScratch(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  name: string,
): Promise<string[]> {
  const { sha256, dumped, consumed } = await streamDump(session, entry, (input) =>
    docker(
      [
        "exec",
        "-i",
        ...restoreEnv(manifest),
        name,
        "pg_restore",
        "-U",
        POSTGRES_USER,
        "-d",
        POSTGRES_DB,
        "--exit-on-error",
        ...restoreFlags(manifest),
      ],
      { input: input as NodeJS.ReadableStream & import("stream").Readable, allowFailure: true },
    ),
  );
  const problem = streamedProblem(
    { sha256, dumped },
    manifest.database.sha256,
    consumed.code === 0 ? null : await restoreFailed(consumed, name),
  );
  return problem ? [problem] : [];
}

/**
 * The backup's problem a streamed restore found (null: none), in the order that tells the causes apart: the
 * repository's read, unless it was only cut short because the consumer had failed (it then says nothing of
 * its own); the consumer's `failed` (its own problem, a host fault already thrown); the hash, which is whole
 * only when neither end was cut short.
 */
export function streamedProblem(
  { sha256, dumped }: { sha256: string; dumped: RunResult },
  recorded: string,
  failed: string | null,
): string | null {
  if (dumped.code !== 0 && (failed === null || dumped.stderr.trim())) {
    return `db.dump cannot be read from the repository: ${lastLine(dumped.stderr)}`;
  }
  if (failed !== null) {
    return failed;
  }
  return sha256 === recorded
    ? null
    : "db.dump: sha256 does not match the manifest (file changed or corrupted)";
}

/** Streams the snapshot's dump into `consumer`'s stdin, hashing it on the way. */
export async function streamDump(
  session: OpsSession,
  entry: BackupEntry,
  consumer: (input: NodeJS.ReadableStream) => ReturnType<typeof docker>,
): Promise<{
  sha256: string;
  bytes: number;
  dumped: Awaited<ReturnType<typeof docker>>;
  consumed: Awaited<ReturnType<typeof docker>>;
}> {
  const hash = createHash("sha256");
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const [dumped, consumed] = await pipeCommands(
    (stdout, signal) =>
      session.exec(`lrestic dump "$1" ${DUMP_FILE}`, [entry.snapshot], {
        stdout,
        allowFailure: true,
        signal,
      }),
    // Once the consumer is done, what is still in flight passes the hash all the same (into nothing).
    (input) => consumer(input.pipe(counter)).finally(() => counter.resume()),
  );
  return { sha256: hash.digest("hex"), bytes, dumped, consumed };
}
