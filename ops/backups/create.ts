/**
 * Backups are restic snapshots in the stack's repository (`<prefix>_backups` volume, see restic.ts): one
 * snapshot per backup holding the database dump (`pg_dump -Fc -Z0`, taken in the stack's own postgres
 * container in the same MVCC snapshot as the manifest's row counts), the manifest, and the media volume
 * with the previous snapshot as parent, so unchanged media files are not even read again. restic writes a
 * snapshot only after all its data is stored: a killed or failed backup never appears in the list.
 */
import { createHash } from "crypto";
import { Transform } from "stream";
import { Settings } from "../../model/settings";
import { POSTGRES_DB, POSTGRES_USER } from "../../model/containers";
import { hasSchema, requirePostgres } from "../database/postgres";
import { docker, pipeCommands, volumeExists } from "../engine/docker";
import { liveWeb } from "../engine/services";
import { failure, OpsError, refuse } from "../core/errors";
import { currentHistory } from "../store/history";
import { storeKeysFromEnv, requireKeys } from "../store/keys";
import { listLegacy, LegacyEntry } from "../store/legacy";
import { formatBytes, progress, warn } from "../core/log";
import {
  BackupEntry,
  backupTags,
  DUMP_APPLICATION,
  DUMP_FILE,
  MANIFEST_FILE,
  MEDIA_DIR,
  MEDIA_EXCLUDE,
  NO_SPACE,
  parseBackupSummary,
  parseSnapshots,
  PASSWORD_FILE,
  REPOSITORY,
  STAGE_DIR,
} from "../store/restic";
import { retention, rollbackReleases } from "../store/retention";
import { OpsSession, withSession } from "../engine/session";
import { checkedManifest, ID_PATTERN, isSha256, REASON_PATTERN, TAG_VALUE } from "../store/manifest";
import { SnapshotSession } from "../database/snapshot";
import { copyToOffsite } from "../store/offsite";
import { backupToolbox } from "../engine/toolbox";

export type { BackupEntry } from "../store/restic";

/** What a backup records about the data it holds, stored in the snapshot as manifest.json. */
/** What a backup's manifest says about it, in the first release's format and the current one alike. */
export interface BackupIdentity {
  readonly id: string;
  readonly stack: string;
  readonly environment: string;
  readonly reason: string;
  /** Docker host time when the backup started. */
  readonly createdAt: string;
  /** Release running when the backup was taken (null: none yet). */
  readonly version: string | null;
  /** For pre-deploy backups: the release about to be deployed. */
  readonly targetVersion?: string;
  readonly postgresVolume: string;
}

export interface Manifest extends BackupIdentity {
  readonly format: 2;
  readonly database: { readonly file: "db.dump"; readonly bytes: number; readonly sha256: string };
  /** Rows per table, every schema (`schema.table` outside public; only public in backups before `objects`). */
  readonly tables: Record<string, number>;
  /** Schemas, views, sequences, functions, large objects; absent in older backups. */
  readonly objects?: Record<string, number>;
  readonly migrations: Record<string, string>;
}

export function checkBackupId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw refuse(
      `\`${id}\` is not a backup id (they look like 2026-11-25T14-00-00Z-pre-deploy).`,
      "List them with `edms-ops backups list`.",
    );
  }
}

/** Parses and checks a format-2 manifest (the one inside each snapshot). */
export function parseManifest(text: string, expectedId?: string): Manifest {
  return checkedManifest<Manifest>(text, 2, expectedId, (m) => [
    ...(m?.database && isSha256(m.database.sha256) && Number.isInteger(m.database.bytes)
      ? []
      : ["no checksum for db.dump"]),
    ...(typeof m?.tables === "object" && typeof m?.migrations === "object"
      ? []
      : ["no row counts or migration state"]),
  ]);
}

export interface BackupListing {
  /** Backups in the restic repository, oldest first. */
  readonly complete: BackupEntry[];
  /** Backups of the first release (`<id>/manifest.json` directories), to import with `backups import-legacy`. */
  readonly legacy: LegacyEntry[];
}

/** Lists without taking the stack lock (restic --no-lock): a backup in progress is simply not there yet. */
export async function listBackups(settings: Settings): Promise<BackupListing> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return { complete: [], legacy: [] };
  }
  await storeKeysFromEnv(settings);
  const script = `
if [ -f ${REPOSITORY}/config ]; then
  [ -f ${PASSWORD_FILE} ] || { echo "__nokey__"; exit 0; }
  lrestic --no-lock snapshots --json --tag edms
else
  echo "[]"
fi`;
  const [listed, legacy] = await Promise.all([
    backupToolbox(settings, script),
    listLegacy(settings),
  ]);
  if (listed.stdout.trim() === "__nokey__") {
    requireKeys(settings, false);
  }
  return { complete: parseSnapshots(listed.stdout), legacy };
}

/** The snapshots of the local repository, read under the session's lock. */
export async function sessionSnapshots(session: OpsSession): Promise<BackupEntry[]> {
  const { stdout } = await session.exec(
    `[ -f ${REPOSITORY}/config ] || { echo "[]"; exit 0; }; lrestic snapshots --json --tag edms`,
  );
  return parseSnapshots(stdout);
}

export async function findBackup(settings: Settings, id: string): Promise<BackupEntry> {
  checkBackupId(id);
  const { complete, legacy } = await listBackups(settings);
  return pickBackup(settings, complete, legacy, id);
}

export function pickBackup(
  settings: Settings,
  complete: readonly BackupEntry[],
  legacy: readonly LegacyEntry[],
  id: string,
  where = settings.names.backupsVolume,
): BackupEntry {
  const found = complete.filter((b) => b.id === id).pop();
  if (found) {
    return found;
  }
  if (legacy.some((l) => l.id === id)) {
    throw refuse(
      `Backup ${id} is in the first release's format.`,
      `Import it into the repository first: \`edms-ops backups import-legacy --stack ${settings.stack}\`, then retry.`,
    );
  }
  throw refuse(
    `No backup ${id} in ${where}.` +
      (complete.length ? ` Newest: ${complete[complete.length - 1].id}.` : ""),
    complete.length
      ? `List them with \`edms-ops backups list --stack ${settings.stack}\`.`
      : `Take one with \`edms-ops backup --stack ${settings.stack}\`.`,
  );
}

/** The manifest stored in a backup's snapshot. */
export async function readManifest(session: OpsSession, entry: BackupEntry): Promise<Manifest> {
  const result = await session.exec(`lrestic dump "$1" ${MANIFEST_FILE}`, [entry.snapshot], {
    allowFailure: true,
  });
  if (result.code !== 0) {
    throw failure(
      `Backup ${entry.id} is not usable: its manifest cannot be read (${lastLine(result.stderr)}).`,
      `Choose another with \`edms-ops backups list --stack ${session.settings.stack}\`.`,
    );
  }
  try {
    return parseManifest(result.stdout, entry.id);
  } catch (err) {
    throw failure(
      `Backup ${entry.id} is not usable: ${(err as Error).message}.`,
      `Choose another with \`edms-ops backups list --stack ${session.settings.stack}\`.`,
    );
  }
}

export async function runningVersion(settings: Settings): Promise<string | null> {
  const web = await liveWeb(settings);
  return web ? (web.labels["edms.version"] ?? null) : null;
}

function newId(hostTime: string, reason: string, taken: readonly string[]): string {
  const stamp = hostTime.replace(/\.\d+Z$/, "Z").replace(/:/g, "-");
  let id = `${stamp}-${reason}`;
  for (let n = 2; taken.includes(id); n += 1) {
    id = `${stamp}-${reason}-${n}`;
  }
  return id;
}

export interface BackupRequest {
  readonly reason: string;
  readonly targetVersion?: string;
}

export interface BackupResult {
  readonly manifest: Manifest;
  readonly entry: BackupEntry;
}

/** Backup ids an operation of this process is using: retention never forgets them. */
export const pinnedBackups = new Set<string>();

/** Takes a backup; returns null when the database has no schema yet (fresh deploy). */
/** Refuses a request whose values would not make a valid backup id or restic tag. */
function checkBackupRequest(request: BackupRequest): void {
  if (request.targetVersion !== undefined && !TAG_VALUE.test(request.targetVersion)) {
    throw refuse(
      `--target-version must be a release tag (letters, digits, . _ -; got \`${request.targetVersion}\`).`,
      "Pass the release being deployed, e.g. --target-version 2.0.0.",
    );
  }
  if (!REASON_PATTERN.test(request.reason)) {
    throw refuse(
      `--reason must be lowercase letters, digits and dashes (got \`${request.reason}\`),`,
      "e.g. --reason before-upgrade",
    );
  }
}

export async function createBackup(
  settings: Settings,
  request: BackupRequest,
): Promise<BackupResult | null> {
  checkBackupRequest(request);
  await requirePostgres(settings);
  if (!(await hasSchema(settings))) {
    progress(`nothing to back up: database of ${settings.stack} has no schema yet (fresh deploy)`);
    return null;
  }
  return withSession(settings, `backup --reason ${request.reason}`, async (session) => {
    await ensureRepository(session);
    const before = await sessionSnapshots(session);
    const earlier = before.length;
    const id = newId(
      await session.hostTime(),
      request.reason,
      before.map((b) => b.id),
    );
    const version = await runningVersion(settings);
    progress(`backup ${id}: ${settings.stack} at release ${version ?? "(none running)"}`);
    let result: BackupResult;
    try {
      result = await snapshotBackup(session, {
        id,
        version,
        request,
        parent: before[before.length - 1],
      });
    } catch (err) {
      throw await backupFailure(session, id, earlier, err as Error);
    }
    await afterBackup(session, before, result.entry);
    return result;
  });
}

/** Retention (never of the new backup) and the off-host copy; a failure of either leaves the backup complete. */
async function afterBackup(
  session: OpsSession,
  before: readonly BackupEntry[],
  entry: BackupEntry,
): Promise<void> {
  const { settings } = session;
  // The new backup is never what this run's retention forgets, whatever the clocks say.
  pinnedBackups.add(entry.id);
  try {
    // Under the lock nothing else changed the repository: the listing from the start plus the new one.
    await applyRetention(session, [...before, entry]);
  } catch (err) {
    warn(
      `backup ${entry.id} is complete, but retention failed: ${(err as Error).message.split("\n").pop()}. ` +
        `Retry with \`edms-ops backups prune --stack ${settings.stack}\`.`,
    );
  } finally {
    pinnedBackups.delete(entry.id);
  }
  if (settings.backup.offsite) {
    await copyToOffsite(session);
  }
}

interface SnapshotPlan {
  readonly id: string;
  readonly version: string | null;
  readonly request: BackupRequest;
  readonly parent?: BackupEntry;
}

async function snapshotBackup(session: OpsSession, plan: SnapshotPlan): Promise<BackupResult> {
  const { settings } = session;
  const createdAt = await session.hostTime();
  const { tables, objects, migrations, database } = await dumpDatabase(session);
  const manifest: Manifest = {
    format: 2,
    id: plan.id,
    stack: settings.stack,
    environment: settings.environment,
    reason: plan.request.reason,
    createdAt,
    version: plan.version,
    ...(plan.request.targetVersion ? { targetVersion: plan.request.targetVersion } : {}),
    postgresVolume: settings.names.postgresVolume,
    database,
    tables,
    objects,
    migrations,
  };
  await session.exec(`cat > ${MANIFEST_FILE}`, [], { input: JSON.stringify(manifest, null, 2) });
  progress(
    `storing snapshot (media ${session.hasMedia ? `incremental from ${plan.parent?.id ?? "nothing: first backup"}` : "volume missing, skipped"})`,
  );
  const summary = await storeSnapshot(session, plan);
  progress(
    `backup ${plan.id} complete: snapshot ${summary.snapshot_id}, database ${formatBytes(database.bytes)}, ` +
      `${summary.total_files_processed} files (${summary.files_new} new, ${summary.files_changed} changed), ` +
      `${formatBytes(summary.data_added)} added to the repository`,
  );
  // Built from what we know rather than asked of restic: every restic start pays the key's scrypt (~0.8 s).
  const entry: BackupEntry = {
    id: plan.id,
    snapshot: summary.snapshot_id,
    time: createdAt,
    reason: plan.request.reason,
    release: plan.version,
    ...(plan.request.targetVersion ? { target: plan.request.targetVersion } : {}),
    stack: settings.stack,
    paths: session.hasMedia ? [STAGE_DIR, MEDIA_DIR] : [STAGE_DIR],
  };
  return { manifest, entry };
}

/**
 * `restic backup` of the staged dump and manifest plus the media volume; a snapshot restic wrote before it
 * failed is forgotten again, so a failed backup never lists.
 */
async function storeSnapshot(session: OpsSession, plan: SnapshotPlan) {
  const { settings } = session;
  const tags = backupTags({
    id: plan.id,
    reason: plan.request.reason,
    release: plan.version,
    target: plan.request.targetVersion,
    stack: settings.stack,
  });
  const result = await session.exec(
    `cd / && lrestic backup --json --host "$1" --tag "$2" \${3:+--parent "$3"} --exclude '${MEDIA_EXCLUDE}' ${STAGE_DIR} \${4:+${MEDIA_DIR}}`,
    [settings.stack, tags, plan.parent?.snapshot ?? "", session.hasMedia ? "media" : ""],
    { allowFailure: true, onLine: resticProgress() },
  );
  // restic exits 3 when it wrote the snapshot but could not read some files. Media files deleted by users
  // while the backup ran are that (they are gone from the live data too): the backup stands, with a
  // warning. A database dump it could not read is no backup at all.
  const written = /"snapshot_id":"([0-9a-f]+)"/.exec(result.stdout)?.[1];
  if (result.code !== 0) {
    if (result.code !== 3 || !written || result.stderr.includes(STAGE_DIR)) {
      if (written) {
        await session.exec(`lrestic forget "$1" >/dev/null`, [written], { allowFailure: true });
      }
      throw failure(
        `restic backup failed: ${lastLine(result.stderr)}`,
        `Retry; if it fails again, check the repository with \`edms-ops verify <id> --stack ${settings.stack}\`.`,
      );
    }
    warn(
      `some media files changed or vanished while they were read; the backup holds the rest: ${lastLine(result.stderr)}`,
    );
  }
  return parseBackupSummary(result.stdout);
}

/** restic --json status lines, turned into a progress line every ten seconds. */
function resticProgress(): (line: string) => void {
  let last = Date.now();
  return (line) => {
    if (!line.startsWith('{"message_type":"status"') || Date.now() - last < 10_000) {
      return;
    }
    last = Date.now();
    const status = JSON.parse(line) as { percent_done?: number; bytes_done?: number };
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

async function dumpDatabase(session: OpsSession) {
  const { settings } = session;
  const { session: db, snapshot } = await SnapshotSession.open(settings.names.postgresContainer);
  try {
    const tables = await db.tableCounts();
    const objects = await db.objectCounts();
    const migrations = await db.migrations();
    progress(
      `dumping database (${Object.keys(tables).length} tables, ${Object.values(tables).reduce((a, b) => a + b, 0)} rows)`,
    );
    const counter = dumpCounter();
    // -Z0: an uncompressed custom-format dump deduplicates between backups (restic compresses it).
    const [dumped, written] = await pipeCommands(
      (stdout, signal) =>
        docker(
          [
            "exec",
            "-e",
            `PGAPPNAME=${DUMP_APPLICATION}`,
            settings.names.postgresContainer,
            "pg_dump",
            "-U",
            POSTGRES_USER,
            "-d",
            POSTGRES_DB,
            "-Fc",
            "-Z0",
            `--snapshot=${snapshot}`,
          ],
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
      database: { file: "db.dump" as const, bytes: counter.bytes, sha256: counter.sha256() },
    };
  } finally {
    db.close();
  }
}

/** Creates the local repository on first use (the key must be on the host by then). */
export async function ensureRepository(session: OpsSession): Promise<void> {
  const state = (
    await session.exec(
      `[ -f ${PASSWORD_FILE} ] || { echo nokey; exit 0; }; [ -f ${REPOSITORY}/config ] && echo ready || echo missing`,
    )
  ).stdout.trim();
  if (state === "nokey") {
    requireKeys(session.settings, false);
  }
  if (state === "missing") {
    progress(`initialising the restic repository in ${session.settings.names.backupsVolume}`);
    await session.exec("lrestic init --repository-version 2 >/dev/null");
  }
}

async function backupFailure(
  session: OpsSession,
  id: string,
  earlier: number,
  err: Error,
): Promise<OpsError> {
  const free = await session.exec("df -Pk /backups | tail -1 | awk '{print $4}'", [], {
    allowFailure: true,
  });
  const full = NO_SPACE.test(err.message) || Number(free.stdout.trim()) < 256;
  const vol = session.settings.names.backupsVolume;
  return failure(
    `Backup ${id} failed${full ? ": no space left in the backups volume" : ""}. No snapshot was written; the ${earlier} earlier backup(s) are untouched.\n` +
      `Cause: ${err.message}`,
    full
      ? `Free space on the volume ${vol} or lower \`edms:backup.keep\` (then \`edms-ops backups prune --stack ${session.settings.stack}\`), and retry.`
      : `Retry with \`edms-ops backup --stack ${session.settings.stack}\`; if it fails again, check the repository with \`edms-ops verify <id>\`.`,
  );
}

/**
 * Forgets what the retention policy does not keep, then prunes the data only they used. `--max-unused
 * 10%` keeps prune from repacking on every run: space comes back in steps, time stays small.
 */
export async function applyRetention(
  session: OpsSession,
  known?: readonly BackupEntry[],
): Promise<string[]> {
  const { settings } = session;
  const base = {
    backups: known ?? (await sessionSnapshots(session)),
    keep: settings.backup.keep,
    pinned: [...pinnedBackups],
    periodic: settings.backup,
  };
  // Rollback targets only add to what is kept: look them up (history, containers) only when a backup
  // would otherwise go.
  let decision = retention({ ...base, rollbackReleases: [] });
  if (decision.forget.length) {
    decision = retention({ ...base, rollbackReleases: await protectedReleases(settings) });
  }
  for (const kept of decision.keep.filter((k) => !k.why.startsWith("one of the newest"))) {
    progress(`retention: kept ${kept.entry.id}: ${kept.why}`);
  }
  if (!decision.forget.length) {
    return [];
  }
  const ids = decision.forget.map((b) => b.id);
  progress(`retention: forgetting ${ids.join(", ")}`);
  await session.exec(
    `lrestic forget "$@" >/dev/null && lrestic prune --max-unused 10% >/dev/null`,
    decision.forget.map((b) => b.snapshot),
  );
  return ids;
}

/**
 * Releases whose pre-deploy backups retention keeps: running and previous (rollback's targets) and the
 * configured one (a deploy that failed before it was recorded is rolled back with its pre-deploy backup).
 */
export async function protectedReleases(settings: Settings): Promise<string[]> {
  return [
    ...rollbackReleases(await runningVersion(settings), await currentHistory(settings)),
    settings.version,
  ];
}

export function lastLine(text: string): string {
  return text.trim().split("\n").pop() ?? "";
}
