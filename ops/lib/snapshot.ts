/**
 * One psql session holding a REPEATABLE READ transaction whose snapshot is exported, so `pg_dump
 * --snapshot` and the row counts written into the manifest see the same data even while the app keeps
 * writing. Without that, a backup taken under load would fail its own verification.
 */
import { ChildProcessWithoutNullStreams, spawn } from "child_process";
import { POSTGRES_DB, POSTGRES_USER } from "../../components/postgres";
import { OpsError } from "./errors";

const END = "__edms_end__";

export class SnapshotSession {
  private buffer = "";
  private waiting?: { resolve: (lines: string[]) => void; reject: (err: Error) => void };
  private stderr = "";

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on("data", (chunk: Buffer) => {
      this.buffer += chunk.toString("utf8");
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
    child.stderr.on("data", (chunk: Buffer) => (this.stderr += chunk.toString("utf8")));
    child.on("close", (code) => {
      this.waiting?.reject(
        new OpsError(`psql session ended (exit ${code}): ${this.stderr.trim().split("\n").pop()}`),
      );
      this.waiting = undefined;
    });
  }

  static async open(container: string): Promise<{ session: SnapshotSession; snapshot: string }> {
    const child = spawn("docker", [
      "exec",
      "-i",
      container,
      "psql",
      "-U",
      POSTGRES_USER,
      "-d",
      POSTGRES_DB,
      "-X",
      "-q",
      "-At",
      "-F",
      "\t",
      "-v",
      "ON_ERROR_STOP=1",
    ]);
    child.stdin.on("error", () => undefined);
    const session = new SnapshotSession(child);
    const [snapshot] = await session.query(
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();",
    );
    return { session, snapshot };
  }

  query(sql: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.child.stdin.write(`${sql}\n\\echo ${END}\n`);
    });
  }

  async tableCounts(): Promise<Record<string, number>> {
    const tables = await this.query(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename;",
    );
    if (tables.length === 0) {
      return {};
    }
    const rows = await this.query(
      tables.map((t) => `SELECT '${t}', count(*) FROM public."${t}"`).join(" UNION ALL ") + ";",
    );
    return Object.fromEntries(rows.map((r) => r.split("\t")).map(([t, n]) => [t, Number(n)]));
  }

  async migrations(): Promise<Record<string, string>> {
    const rows = await this.query(
      "SELECT app, max(name) FROM django_migrations GROUP BY app ORDER BY app;",
    );
    return Object.fromEntries(rows.map((r) => r.split("\t")));
  }

  close(): void {
    this.child.stdin.end("COMMIT;\n");
  }
}
