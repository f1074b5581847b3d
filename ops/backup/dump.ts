/**
 * The database half of a backup: `pg_dump -Fc -Z0` in the stack's postgres container, in the same MVCC
 * snapshot as the row counts and the database's own state (settings, privileges, owners: see dbstate.ts),
 * streamed into the session's stage folder while it is hashed and counted.
 */
import { createHash } from "crypto";
import { Transform } from "stream";
import { POSTGRES_DB } from "../../model/containers";
import { failure } from "../core/errors";
import { formatBytes, lastLine, progress } from "../core/log";
import { SnapshotSession } from "../database/snapshot";
import { pipeCommands } from "../engine/docker";
import { pgCommand, runPg } from "../database/postgres";
import type { OpsSession } from "../engine/session";
import { DUMP_APPLICATION, DUMP_FILE, STAGE_DIR } from "../store/restic";
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

export async function dumpDatabase(session: OpsSession) {
  const { settings } = session;
  const { session: db, snapshot } = await SnapshotSession.open(settings.names.postgresContainer);
  try {
    const tables = await db.tableCounts();
    const objects = await db.objectCounts();
    const migrations = await db.migrations();
    const databaseState = await db.databaseState();
    progress(
      `dumping database (${Object.keys(tables).length} tables, ${Object.values(tables).reduce((a, b) => a + b, 0)} rows)`,
    );
    const counter = dumpCounter();
    // -Z0: an uncompressed custom-format dump deduplicates between backups (restic compresses it).
    const [dumped, written] = await pipeCommands(
      (stdout, signal) =>
        runPg(
          pgCommand(
            settings.names.postgresContainer,
            "pg_dump",
            ["-d", POSTGRES_DB, "-Fc", "-Z0", `--snapshot=${snapshot}`],
            { PGAPPNAME: DUMP_APPLICATION },
          ),
          { stdout, allowFailure: true, signal },
        ),
      (input) =>
        session.exec(`rm -f ${STAGE_DIR}/* && cat > ${DUMP_FILE}`, [], {
          input: input.pipe(counter.stream),
          allowFailure: true,
        }),
    );
    if (dumped.code !== 0 || written.code !== 0) {
      throw failure(
        `database dump failed: ${lastLine(written.code !== 0 ? written.stderr : dumped.stderr)}`,
        "Check the postgres container's log (`docker logs <prefix>-postgres`) and the backups volume's free space, then retry.",
      );
    }
    return {
      tables,
      objects,
      migrations,
      databaseState,
      database: { file: "db.dump" as const, bytes: counter.bytes, sha256: counter.sha256() },
    };
  } finally {
    db.close();
  }
}
