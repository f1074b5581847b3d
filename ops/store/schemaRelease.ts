/**
 * A backup's release label: the release whose schema the database holds, told by its migration state. The
 * web container is no witness: a restore of another release's backup leaves the old release's web stopped
 * beside the restored schema, and a drill that ran that release's `migrate --check` against it would fail.
 *
 * What is known of releases and their schemas: each deployment (history.jsonl records the migration state
 * right after it), and the last restore (last-restore.json: the restored backup's release and migrations).
 * The newest deployment with the database's exact migration state wins (a deployment is what was seen, a
 * restore only what the backup said); then the last restore's; only when neither matches (a history lost
 * with the host, migrations run outside a deploy) the running web's release, with a warning; null when
 * nothing runs either.
 */
import { parseJsonOrNull } from "../core/json";
import { warn } from "../core/log";
import { runningVersion } from "../engine/services";
import { readBackupsVolume } from "../engine/toolbox";
import { Settings } from "../../model/settings";
import type { OpsSession } from "../engine/session";
import { LAYOUT } from "./layout";
import type { Manifest } from "./manifest";
import { markerScript } from "./markers";
import { Deployment, RestoreRecord, RestoreRecordSchema } from "./records";

type Migrations = Readonly<Record<string, string>>;

/** Where a label came from, strongest first. */
export type LabelBasis = "deployment" | "restore" | "running" | "none" | "empty";

export interface SchemaRelease {
  readonly release: string | null;
  readonly basis: LabelBasis;
}

/** Why a label is what it is, for the backup's progress line. */
export function describeLabel(label: SchemaRelease): string {
  switch (label.basis) {
    case "deployment":
      return `release ${label.release}: its deployment recorded the dump's migration state`;
    case "restore":
      return `release ${label.release}: the last restore brought back a backup of it with the dump's migration state`;
    case "running":
      return `release ${label.release}: the running web's (no deployment or restore on record has the dump's migration state)`;
    case "none":
      return "no release: no deployment or restore on record has the dump's migration state, and no web runs";
    case "empty":
      return "no release: the database has no Django migrations (an emptied database)";
    default: {
      const unreachable: never = label.basis;
      return unreachable;
    }
  }
}

/** The same apps at the same latest migration: the same schema as far as Django can tell. */
export function sameMigrations(a: Migrations, b: Migrations): boolean {
  const apps = Object.keys(a);
  return apps.length === Object.keys(b).length && apps.every((app) => b[app] === a[app]);
}

export interface SchemaFacts {
  /** history.jsonl, oldest first. */
  readonly deployments: readonly Pick<Deployment, "version" | "migrations">[];
  readonly restored: Pick<RestoreRecord, "release" | "migrations"> | null;
  /** The running web's release, asked only when nothing else matches. */
  readonly running: () => Promise<string | null>;
}

/** The release of a database at migration state `state` (pure but for `running`, see the file's comment). */
export async function releaseOfSchema(
  state: Migrations,
  facts: SchemaFacts,
): Promise<SchemaRelease> {
  // No schema is no release's schema: a restore of it must not start any release's web on it.
  if (Object.keys(state).length === 0) {
    return { release: null, basis: "empty" };
  }
  const deployed = facts.deployments.filter((d) => sameMigrations(d.migrations, state)).pop();
  if (deployed) {
    return { release: deployed.version, basis: "deployment" };
  }
  const restored = facts.restored;
  if (restored?.release && sameMigrations(restored.migrations, state)) {
    return { release: restored.release, basis: "restore" };
  }
  const running = await facts.running();
  return running ? { release: running, basis: "running" } : { release: null, basis: "none" };
}

/**
 * The label of a backup of a database at `state`: from `deployments` (the host's history, as the backup's
 * session read it), `restored` (readRestoreRecord, read while the dump runs) and, last, the web.
 */
export async function schemaRelease(
  session: OpsSession,
  state: Migrations,
  deployments: readonly Deployment[],
  restored: RestoreRecord | null,
): Promise<SchemaRelease> {
  const label = await releaseOfSchema(state, {
    deployments,
    restored,
    running: () => runningVersion(session.settings),
  });
  if (label.basis === "running") {
    warn(
      `no deployment or restore on record has the database's migration state: the backup is labelled ` +
        `with the running web's release ${label.release}, which may not be the schema's`,
    );
  }
  return label;
}

/** The last restore's record, read without the stack lock (retention's facts). */
export async function lastRestoreRecord(settings: Settings): Promise<RestoreRecord | null> {
  const text = await readBackupsVolume(settings, 'cat "$1" 2>/dev/null || true', [
    LAYOUT.lastRestore,
  ]);
  return parseJsonOrNull(text, RestoreRecordSchema);
}

/** The last restore's record in the backups volume (none before the first restore, or unreadable). */
export async function readRestoreRecord(session: OpsSession): Promise<RestoreRecord | null> {
  const read = await session.exec('cat "$1" 2>/dev/null || true', [LAYOUT.lastRestore]);
  return parseJsonOrNull(read.stdout, RestoreRecordSchema);
}

/**
 * Written once a restore has swapped the backup's database in: from then on the database holds the schema of
 * the backup's release, whatever web stands stopped beside it. Only a hint for labels: a failed write warns.
 */
export async function recordRestored(session: OpsSession, manifest: Manifest): Promise<void> {
  const record: RestoreRecord = {
    id: manifest.id,
    release: manifest.version,
    migrations: manifest.migrations,
    restoredAt: new Date().toISOString(),
  };
  const written = await session.exec(markerScript(), [LAYOUT.lastRestore], {
    input: JSON.stringify(record),
    allowFailure: true,
  });
  if (written.code !== 0) {
    warn(`could not record the restore in ${LAYOUT.lastRestore}: later backups may be mislabelled`);
  }
}
