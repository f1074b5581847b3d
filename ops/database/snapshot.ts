/**
 * One psql session holding a REPEATABLE READ transaction whose snapshot is exported, so `pg_dump
 * --snapshot` and the row counts written into the manifest see the same data even while the app keeps
 * writing. Without that, a backup taken under load would fail its own verification.
 */
import { ChildProcessWithoutNullStreams, spawn } from "child_process";
import {
  COUNTS_SQL,
  DATABASE_STATE_SQL,
  parseDatabaseState,
  MIGRATIONS_TABLE_SQL,
  migrationsSql,
  OBJECTS_SQL,
  parseCounts,
  parseMigrations,
  psqlCommand,
} from "./postgres";
import { failure } from "../core/errors";
import { DatabaseState } from "../store/manifest";
import { DatabaseServer } from "./server";

const END = "__edms_end__";

export class SnapshotSession {
  private buffer = "";
  private waiting?: { resolve: (lines: string[]) => void; reject: (err: Error) => void };
  private stderr = "";
  private ended?: Error;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    // Decoded as a stream: a multibyte character (a table name, a comment) split across two chunks of a
    // large answer would otherwise become U+FFFD in the manifest, which no restore could ever match.
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      this.buffer += chunk;
      const at = this.buffer.indexOf(`${END}\n`);
      if (at >= 0 && this.waiting) {
        const lines = this.buffer
          .slice(0, at)
          .split("\n")
          .filter((l) => l.length > 0);
        this.buffer = this.buffer.slice(at + END.length + 1);
        const { resolve } = this.waiting;
        this.waiting = undefined;
        resolve(lines);
      }
    });
    child.stderr.on("data", (chunk: string) => (this.stderr += chunk));
    child.on("close", (code) => {
      // A session that ends before its first query (started early, the server gone) fails that query too.
      this.ended = failure(
        `psql session ended (exit ${code}): ${this.stderr.trim().split("\n").pop()}`,
        "Check that the postgres container is running (`docker ps`), then retry.",
      );
      this.waiting?.reject(this.ended);
      this.waiting = undefined;
    });
  }

  /** Connects now; the snapshot is taken by `exportSnapshot`, when the data it must hold is final. */
  static start(server: DatabaseServer): SnapshotSession {
    const psql = psqlCommand(server);
    const child = spawn(psql.command, psql.args, { env: { ...process.env, ...psql.env } });
    child.stdin.on("error", () => undefined);
    return new SnapshotSession(child);
  }

  /** Begins the transaction and exports its snapshot (what `pg_dump --snapshot` takes). */
  async exportSnapshot(): Promise<string> {
    const [snapshot] = await this.query(
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();",
    );
    return snapshot;
  }

  query(sql: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      if (this.ended) {
        reject(this.ended);
        return;
      }
      this.waiting = { resolve, reject };
      this.child.stdin.write(`${sql}\n\\echo ${END}\n`);
    });
  }

  async tableCounts(): Promise<Record<string, number>> {
    return parseCounts(await this.query(COUNTS_SQL));
  }

  async objectCounts(): Promise<Record<string, number>> {
    return parseCounts(await this.query(OBJECTS_SQL));
  }

  async databaseState(): Promise<DatabaseState> {
    return parseDatabaseState(await this.query(DATABASE_STATE_SQL));
  }

  async migrations(): Promise<Record<string, string>> {
    const [table] = await this.query(MIGRATIONS_TABLE_SQL);
    return table ? parseMigrations(await this.query(migrationsSql(table))) : {};
  }

  close(): void {
    this.child.stdin.end("COMMIT;\n");
  }
}
