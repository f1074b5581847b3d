/**
 * Backups of a database that holds only the bootstrap (a first deploy on a new host, before any restore)
 * must never push a backup of real data out of a repository (retention.ts). The criterion, precise and
 * conservative (when in doubt a backup counts as real data):
 *
 *   `bootstrap` wrote bootstrap.json for this postgres volume (it does so only when it found no user), and
 *   every table of the backup has exactly the row count recorded there (a table absent from the record must
 *   be empty).
 *
 * Any row added or removed since (a user's document, a restore of real data, a migration that adds rows)
 * makes the backup real. Such backups are tagged `bootstrap` (restic.ts), so every host sees it in a listing.
 */
import { Settings, databaseIdentity } from "../../model/settings";
import { parseJsonOrNull } from "../core/json";
import type { OpsSession } from "../engine/session";
import { backupToolbox } from "../engine/toolbox";
import { LAYOUT } from "./layout";
import { BootstrapRecord, BootstrapRecordSchema } from "./records";

/** Pure: does a backup with these row counts of this volume hold only what the bootstrap wrote? */
export function holdsOnlyBootstrap(
  record: BootstrapRecord | null,
  postgresVolume: string,
  tables: Readonly<Record<string, number>>,
): boolean {
  if (!record || record.postgresVolume !== postgresVolume) {
    return false;
  }
  const names = new Set([...Object.keys(record.tables), ...Object.keys(tables)]);
  return [...names].every((name) => (tables[name] ?? 0) === (record.tables[name] ?? 0));
}

/** Written by `bootstrap` once it has set up a database that had no user. */
export async function writeBootstrapRecord(
  settings: Settings,
  tables: Record<string, number>,
): Promise<void> {
  const record: BootstrapRecord = {
    postgresVolume: databaseIdentity(settings),
    tables,
    recordedAt: new Date().toISOString(),
  };
  await backupToolbox(settings, `cat > "$1.new" && sync && mv "$1.new" "$1"`, {
    writable: true,
    input: JSON.stringify(record),
    args: [LAYOUT.bootstrapRecord],
  });
}

/** The record under the session's lock; null when there is none (or it does not parse). */
export async function readBootstrapRecord(session: OpsSession): Promise<BootstrapRecord | null> {
  const { stdout } = await session.exec(`cat "$1" 2>/dev/null || true`, [LAYOUT.bootstrapRecord]);
  return parseJsonOrNull(stdout, BootstrapRecordSchema);
}
