/**
 * The database half of a backup: `pg_dump -Fc -Z0` in the same MVCC snapshot as the row counts and the
 * database's own state (settings, privileges, owners: see dbstate.ts), written into the session's stage by a
 * client container (with an engine) or streamed into it here (the scheduler), hashed and counted.
 */
import { createHash } from "crypto";
import { PassThrough, Transform } from "stream";
import { pgpassField, POSTGRES_USER, SUPERUSER_PASSWORD_FILE } from "../../model/containers";
import { Settings } from "../../model/settings";
import { allSettledOrThrow, failure } from "../core/errors";
import { formatBytes, lastLine, progress } from "../core/log";
import { SnapshotSession } from "../database/snapshot";
import { docker, inspectContainer, pipeCommands } from "../engine/docker";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { SHA256_TOOL } from "../engine/toolbox";
import { engineless } from "../engine/engineless";
import { OPS_SESSION_OPTIONS, pgCommand, runPg, stackServer } from "../database/postgres";
import { CREDENTIALS_DIR, DatabaseServer, externalClientEnv } from "../database/server";
import type { OpsSession } from "../engine/session";
import {
  DUMP_APPLICATION,
  DUMP_FILE,
  OPS_HELPER_ROLE,
  STAGE_DIR,
  stageVolume,
} from "../store/restic";
import { z } from "zod";
import { tryParseJson } from "../core/json";

const ResticStatusSchema = z.looseObject({
  percent_done: z.number().optional(),
  bytes_done: z.number().optional(),
});

/** restic --json status lines, turned into a progress line every ten seconds. */
export function resticProgress(): (line: string) => void {
  let last = Date.now();
  return (line) => {
    if (!line.startsWith('{"message_type":"status"') || Date.now() - last < 10_000) {
      return;
    }
    last = Date.now();
    const parsed = tryParseJson(line, ResticStatusSchema);
    if (!parsed.ok) {
      return; // a progress line only: an odd one is not worth failing a backup for
    }
    const status = parsed.value;
    progress(
      `  ${((status.percent_done ?? 0) * 100).toFixed(0)}% (${formatBytes(status.bytes_done ?? 0)})`,
    );
  };
}

/** Passes the dump through, hashing and counting it, with a progress line every 256 MiB. */
function dumpCounter(): { stream: Transform; readonly bytes: number; sha256: () => string } {
  const hash = createHash("sha256");
  let bytes = 0;
  let reported = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      if (bytes - reported > 256 * 1024 * 1024) {
        reported = bytes;
        progress(`  ${formatBytes(bytes)} dumped`);
      }
      done(null, chunk);
    },
  });
  return {
    stream,
    get bytes() {
      return bytes;
    },
    sha256: () => hash.digest("hex"),
  };
}

/**
 * The dump, in one snapshot with the row counts and the database's own state. The client container starts at
 * once and waits; once `after` resolves (web and worker stopped, no restore in progress) the psql session
 * connects and exports the snapshot, and the counts are read in it while pg_dump writes it. `stop`: the backup
 * failed elsewhere; a dump not started yet is not, one running is ended and removed.
 */
export async function dumpDatabase(
  session: OpsSession,
  stop?: AbortSignal,
  after: Promise<unknown> = Promise.resolve(),
) {
  const { settings } = session;
  // Connected only then: not one more connection beside the app's, nor one idling while web and worker stop.
  let db: SnapshotSession | undefined;
  try {
    let started = 0;
    const opened = after.then(async () => {
      // The backup failed while it waited: its error is what the caller sees.
      if (stop?.aborted) {
        throw stop.reason;
      }
      db = SnapshotSession.start(stackServer(settings));
      const snapshot = await db.exportSnapshot();
      started = Date.now();
      progress("dumping database");
      return { db, snapshot };
    });
    const snapshot = opened.then((o) => o.snapshot);
    snapshot.catch(() => undefined);
    // The counts' failure first: a psql session that ended (a table the role cannot read, named in its error)
    // also ends the snapshot pg_dump imports, whose own error would then say only that.
    const [facts, dump] = await allSettledOrThrow([
      opened.then(async ({ db: open }) => ({
        tables: await open.tableCounts(),
        objects: await open.objectCounts(),
        migrations: await open.migrations(),
        databaseState: await open.databaseState(),
      })),
      engineless()
        ? snapshot.then((exported) => dumpThroughPipe(session, exported))
        : dumpWithClient(settings, snapshot, stop),
    ]);
    const rows = Object.values(facts.tables).reduce((a, b) => a + b, 0);
    progress(
      `  dumped ${formatBytes(dump.bytes)} in ${((Date.now() - started) / 1000).toFixed(1)} s (${Object.keys(facts.tables).length} tables, ${rows} rows)`,
    );
    return { ...facts, database: dump };
  } finally {
    (db as SnapshotSession | undefined)?.close();
  }
}

/** -Z0: an uncompressed custom-format dump deduplicates between backups (restic compresses it). */
const DUMP_ARGS = (database: string, snapshot: string) => [
  ...["-d", database, "-Fc", "-Z0", "--no-sync"],
  `--snapshot=${snapshot}`,
];

interface DumpFile {
  readonly file: "db.dump";
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * Engineless (the scheduler): pg_dump runs here over the data network, streamed into the stage folder (also
 * here) while it is hashed and counted.
 */
async function dumpThroughPipe(session: OpsSession, snapshot: string): Promise<DumpFile> {
  const { settings } = session;
  const server = stackServer(settings);
  const counter = dumpCounter();
  const [dumped, written] = await pipeCommands(
    (stdout, signal) =>
      runPg(
        pgCommand(server, "pg_dump", DUMP_ARGS(server.database, snapshot), {
          PGAPPNAME: DUMP_APPLICATION,
        }),
        { stdout, allowFailure: true, signal },
      ),
    (input) =>
      session.exec(`rm -f ${STAGE_DIR}/* && cat > ${DUMP_FILE}`, [], {
        input: input.pipe(counter.stream),
        allowFailure: true,
      }),
  );
  if (dumped.code !== 0 || written.code !== 0) {
    throw dumpFailed(written.code !== 0 ? written.stderr : dumped.stderr, !!settings.database);
  }
  return { file: "db.dump", bytes: counter.bytes, sha256: counter.sha256() };
}

function dumpFailed(stderr: string, external = false) {
  return failure(
    `database dump failed: ${lastLine(stderr)}`,
    external
      ? "Check the external database (`edms-ops health`), the admin's rights on every table and the Docker host's free space, then retry."
      : "Check the postgres container's log (`docker logs <prefix>-postgres`) and the backups volume's free space, then retry.",
  );
}

/** The dump client's last words when its lock container went first (in a single-quoted trap: no quote). */
const HOLDER_GONE =
  "the lock container of this operation has gone: the dump was stopped and removed";

/**
 * The script of the dump's client container: the pgpass line is stdin's first line, the snapshot its second
 * (sent once taken); the server's host, port and user are $1–$3, the database $4. stdin then stays open until
 * edms-ops ends: when it closes early (edms-ops killed), the dump is stopped and its file removed, so no
 * plaintext copy outlives the operation.
 */
export const CLIENT_SCRIPT = [
  "umask 077",
  // A second watcher, besides stdin's end: the lock container holds the stage folder flocked from before
  // this client starts until it is gone (lock.ts). Once this watcher could take that lock, the holder is
  // gone, and so is this client, however its own stdin fares (also when it started after the holder went).
  // Nothing it wrote is anyone's then: a dump running or done is removed.
  "if command -v flock >/dev/null; then",
  `  trap '[ -z "\${dump:-}" ] || kill -KILL "$dump" 2>/dev/null || :; rm -f ${DUMP_FILE}; echo "${HOLDER_GONE}" >&2; exit 143' TERM`,
  `  { flock -s ${STAGE_DIR} true && kill -TERM $$; } >/dev/null 2>&1 &`,
  "fi",
  "IFS= read -r pass",
  // An empty first line: the pgpass file is the one PGPASSFILE names (an external server's, mounted).
  `if [ -n "$pass" ]; then printf '%s\\n' "$pass" > /tmp/pgpass; PGPASSFILE=/tmp/pgpass; fi`,
  "unset pass",
  // The container starts while the snapshot is taken: it waits here, and stdin ending first ends it.
  "IFS= read -r snapshot",
  `rm -f ${STAGE_DIR}/*`,
  `PGPASSFILE="$PGPASSFILE" PGAPPNAME=${DUMP_APPLICATION} PGOPTIONS="${OPS_SESSION_OPTIONS}" ` +
    `pg_dump -h "$1" -p "$2" -U "$3" ${DUMP_ARGS('"$4"', '"$snapshot"').join(" ")} -f ${DUMP_FILE} &`,
  "dump=$!",
  // An asynchronous list reads /dev/null unless told otherwise: the watcher gets the real stdin as fd 3.
  // Only a dump still running is removed: once it is done, `kill` fails and the complete file stays.
  `exec 3<&0; { cat <&3 >/dev/null; kill "$dump" 2>/dev/null && rm -f ${DUMP_FILE}; } &`,
  // As PID 1 the shell's exit ends the watcher at once: a failed or stopped dump is removed here too.
  `wait "$dump" || { s=$?; rm -f ${DUMP_FILE}; exit "$s"; }`,
  "rm -f /tmp/pgpass",
  SHA256_TOOL,
  `$H ${DUMP_FILE}`,
  `wc -c < ${DUMP_FILE}`,
].join("\n");

/**
 * With an engine: pg_dump in a client container of the server's image, in the server's network namespace (an
 * external server: on the network that reaches it), as the superuser (its password from the server's secret
 * file, handed over on stdin into a pgpass file in the client's tmpfs), writing straight into the session's
 * stage volume. Streaming it out of the server's container and into the lock container took 7.7 s for a
 * 114 MiB dump (1M rows) that pg_dump itself writes in 0.9 s; this client took 2.2-2.4 s on the data network,
 * its start included, and 1.7 s in the server's namespace.
 */
export async function dumpWithClient(
  settings: Settings,
  snapshot: string | Promise<string>,
  stop?: AbortSignal,
): Promise<DumpFile> {
  const server = stackServer(settings);
  // An external server's pgpass is on the credentials volume the client mounts.
  const pgpass = server.kind === "external" ? "\n" : await superuserPgpass(settings);
  // The server's own image (its pg_dump is of the server's major), not the configured one, which a
  // `pulumi config set` not yet deployed may have changed.
  const image =
    server.kind === "external"
      ? server.clientImage
      : (await inspectContainer(server.container)).image;
  // Open until the client ends: its first line is the pgpass line, its end edms-ops' end.
  const stdin = new PassThrough();
  stdin.write(pgpass);
  if (stop?.aborted) {
    throw dumpFailed("stopped before it began: the backup failed elsewhere");
  }
  // Stopped: stdin ends as when edms-ops dies, and the client removes what it wrote.
  const end = () => stdin.end();
  stop?.addEventListener("abort", end, { once: true });
  // The snapshot is the client's second line; one that could not be taken ends it before any dump.
  let noSnapshot: { readonly reason: unknown } | undefined;
  Promise.resolve(snapshot).then(
    (taken) => {
      if (!stdin.destroyed && !stdin.writableEnded) {
        stdin.write(`${taken}\n`);
      }
    },
    (reason: unknown) => {
      noSnapshot = { reason };
      stdin.end();
    },
  );
  const result = await docker(clientArgs(settings, server, image), {
    input: stdin,
    allowFailure: true,
  }).finally(() => {
    stop?.removeEventListener("abort", end);
    stdin.destroy();
  });
  if (noSnapshot) {
    throw noSnapshot.reason;
  }
  const [hash, size] = result.stdout.trim().split("\n");
  const sha256 = /^[0-9a-f]{64}\b/.exec(hash ?? "")?.[0];
  if (result.code !== 0 || !sha256 || !/^\d+$/.test(size ?? "")) {
    throw dumpFailed(
      result.stderr || "the dump's client container printed no checksum",
      server.kind === "external",
    );
  }
  return { file: "db.dump", bytes: Number(size), sha256 };
}

function clientArgs(
  settings: Settings,
  server: DatabaseServer,
  image: string | undefined,
): string[] {
  const stage = { volume: stageVolume(settings.namePrefix), path: STAGE_DIR };
  // The stack's own server is reached on its loopback, from inside its network namespace: a container joining
  // it starts in a third of the time one on the data network takes (no interface, address or firewall rules
  // of its own), and sees what the server sees, nothing more.
  const where =
    server.kind === "external"
      ? [server.host, String(server.port), server.user, server.database]
      : ["127.0.0.1", "5432", POSTGRES_USER, server.database];
  return dockerRunArgs({
    image: image ?? settings.postgresImage,
    args: ["-euc", CLIENT_SCRIPT, "edms-ops", ...where],
    remove: true,
    stdin: true,
    logging: false,
    network: server.kind === "external" ? server.network : `container:${server.container}`,
    user: "0",
    entrypoint: "sh",
    labels: opsLabels(settings, OPS_HELPER_ROLE),
    ...(server.kind === "external"
      ? {
          mounts: [
            stage,
            { volume: server.credentialsVolume, path: CREDENTIALS_DIR, readOnly: true },
          ],
          env: externalClientEnv(server),
        }
      : { mounts: [stage] }),
    limits: settings.limits.helpers,
  });
}

/** The superuser's pgpass line, from the password file in the server's container (never printed). */
async function superuserPgpass(settings: Settings): Promise<string> {
  const container = settings.names.postgresContainer;
  const read = await docker(["exec", container, "cat", SUPERUSER_PASSWORD_FILE], {
    allowFailure: true,
  });
  if (read.code !== 0) {
    throw failure(
      `database dump failed: the superuser's password file ${SUPERUSER_PASSWORD_FILE} is not readable in ${container}: ${lastLine(read.stderr)}`,
      `Redeploy (\`pulumi up --stack ${settings.stack}\`) so the postgres container has it, then retry.`,
    );
  }
  // As the official image's entrypoint reads it: trailing newlines are not part of the password.
  return `*:*:*:${POSTGRES_USER}:${pgpassField(read.stdout.replace(/\n+$/, ""))}\n`;
}
