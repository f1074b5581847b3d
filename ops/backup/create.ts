/**
 * Backups are restic snapshots in the stack's repository (`<prefix>_backups` volume, see restic.ts): one
 * snapshot per backup holding the database dump (`pg_dump -Fc -Z0`, taken in the stack's own postgres
 * container in the same MVCC snapshot as the manifest's row counts), the manifest, and the media volume
 * with the previous snapshot as parent, so unchanged media files are not even read again. restic writes a
 * snapshot only after all its data is stored: a killed or failed backup never appears in the list; one it
 * wrote without files it could not read (exit code 3) is forgotten again, as a failure naming them. The
 * manifest records the media files and bytes counted just before restic reads them (mediaCount.ts).
 */
import { Settings } from "../../model/settings";
import { failure, OpsError, refuse } from "../core/errors";
import { formatBytes, lastLine, progress, warn } from "../core/log";
import { hasSchema, requirePostgres } from "../database/postgres";
import { runningVersion } from "../engine/services";
import { OpsSession, withSession } from "../engine/session";
import { ensureRepository, sessionSnapshots } from "../store/catalog";
import { Manifest, MediaCount, REASON_PATTERN, TAG_VALUE } from "../store/manifest";
import { copyToOffsite } from "../store/offsite";
import { applyRetention } from "../store/prune";
import {
  BackupEntry,
  backupTags,
  MANIFEST_FILE,
  MEDIA_DIR,
  MEDIA_EXCLUDE,
  NO_SPACE,
  BackupSummary,
  parseBackupSummary,
  STAGE_DIR,
  unreadableItems,
} from "../store/restic";
import { BACKUPS_DIR } from "../store/layout";
import { dumpDatabase, resticProgress } from "./dump";
import { nothingToBackUp } from "./emptyDatabase";
import { MEDIA_COUNT_SCRIPT, mediaCountProblems, parseMediaCount } from "./mediaCount";

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
    await nothingToBackUp(settings);
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
  session.pinned.add(entry.id);
  try {
    // Under the lock nothing else changed the repository: the listing from the start plus the new one.
    await applyRetention(session, [...before, entry]);
  } catch (err) {
    warn(
      `backup ${entry.id} is complete, but retention failed: ${(err as Error).message.split("\n").pop()}. ` +
        `Retry with \`edms-ops backups prune --stack ${settings.stack}\`.`,
    );
  } finally {
    session.pinned.delete(entry.id);
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

/** Attempts at a snapshot whose media fell short of their count (files deleted between count and read). */
const SNAPSHOT_ATTEMPTS = 2;

async function snapshotBackup(session: OpsSession, plan: SnapshotPlan): Promise<BackupResult> {
  const { settings } = session;
  const createdAt = await session.hostTime();
  const { tables, objects, migrations, database } = await dumpDatabase(session);
  const base: Manifest = {
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
  for (let attempt = 1; ; attempt += 1) {
    // Counted right before restic reads the volume, in the same container and with the same exclusion.
    const media = session.hasMedia ? await countMedia(session, MEDIA_DIR) : undefined;
    const manifest: Manifest = media ? { ...base, media } : base;
    const text = JSON.stringify(manifest, null, 2);
    await session.exec(`cat > ${MANIFEST_FILE}`, [], { input: text });
    progress(
      `storing snapshot (media ${media ? `${media.files} files, ${formatBytes(media.bytes)}, incremental from ${plan.parent?.id ?? "nothing: first backup"}` : "volume missing, skipped"})`,
    );
    const summary = await storeSnapshot(session, plan);
    const short = media
      ? mediaShortfall(summary, media, database.bytes + Buffer.byteLength(text))
      : [];
    if (short.length === 0) {
      reportStored(plan.id, summary, database.bytes);
      return { manifest, entry: backupEntry(session, plan, summary.snapshot_id, createdAt) };
    }
    await forgetSnapshot(session, summary.snapshot_id);
    if (attempt >= SNAPSHOT_ATTEMPTS) {
      throw failure(
        `the snapshot holds fewer media than were counted just before (${short.join("; ")}): files were deleted or shrank while the backup read them, ${attempt} times.`,
        `Retry when fewer files are being deleted (\`edms-ops backup --stack ${settings.stack}\`).`,
      );
    }
    warn(
      `${short.join("; ")}: media changed while the backup read them; taking the snapshot again`,
    );
  }
}

/** The media in the snapshot, from restic's own summary, against the count taken before it read them. */
function mediaShortfall(
  summary: BackupSummary,
  counted: MediaCount,
  stagedBytes: number,
): string[] {
  // The staged folder holds exactly two files: db.dump and manifest.json.
  const stored = {
    files: summary.total_files_processed - 2,
    bytes: summary.total_bytes_processed - stagedBytes,
  };
  return mediaCountProblems("the snapshot", counted, stored);
}

export async function countMedia(session: OpsSession, dir: string): Promise<MediaCount> {
  return parseMediaCount((await session.exec(MEDIA_COUNT_SCRIPT, [dir])).stdout);
}

function reportStored(id: string, summary: BackupSummary, databaseBytes: number): void {
  progress(
    `backup ${id} complete: snapshot ${summary.snapshot_id}, database ${formatBytes(databaseBytes)}, ` +
      `${summary.total_files_processed} files (${summary.files_new} new, ${summary.files_changed} changed), ` +
      `${formatBytes(summary.data_added)} added to the repository`,
  );
}

/** Built from what we know rather than asked of restic: every restic start pays the key's scrypt (~0.8 s). */
function backupEntry(
  session: OpsSession,
  plan: SnapshotPlan,
  snapshot: string,
  time: string,
): BackupEntry {
  return {
    id: plan.id,
    snapshot,
    time,
    reason: plan.request.reason,
    release: plan.version,
    ...(plan.request.targetVersion ? { target: plan.request.targetVersion } : {}),
    stack: session.settings.stack,
    paths: session.hasMedia ? [STAGE_DIR, MEDIA_DIR] : [STAGE_DIR],
  };
}

async function forgetSnapshot(session: OpsSession, snapshot: string): Promise<void> {
  await session.exec(`lrestic forget "$1" >/dev/null`, [snapshot], { allowFailure: true });
}

/**
 * `restic backup` of the staged dump and manifest plus the media volume. A snapshot restic wrote before it
 * failed is forgotten again, so a failed backup never lists. Exit code 3 is such a failure: restic wrote
 * the snapshot without the files it could not read, and a backup missing files is no backup.
 */
async function storeSnapshot(session: OpsSession, plan: SnapshotPlan): Promise<BackupSummary> {
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
  if (result.code === 0) {
    return parseBackupSummary(result.stdout);
  }
  const written = /"snapshot_id":"([0-9a-f]+)"/.exec(result.stdout)?.[1];
  if (written) {
    await forgetSnapshot(session, written);
  }
  if (result.code === 3) {
    throw unreadableFailure(settings.stack, unreadableItems(result.stderr));
  }
  throw failure(
    `restic backup failed: ${lastLine(result.stderr)}`,
    `Retry; if it fails again, check the repository with \`edms-ops verify <id> --stack ${settings.stack}\`.`,
  );
}

/** Exit code 3: which files (backupFailure adds what to do about them). */
const UNREADABLE = /^restic could not read \d+ item/;

function unreadableFailure(stack: string, items: readonly string[]): OpsError {
  const shown = items.slice(0, 10);
  const more = items.length > shown.length ? `\n  … and ${items.length - shown.length} more` : "";
  return failure(
    `restic could not read ${items.length} item(s), so the snapshot would miss them; it was forgotten:\n  - ${shown.join("\n  - ")}${more}`,
    `Make them readable or remove them, then retry \`edms-ops backup --stack ${stack}\`.`,
  );
}

async function backupFailure(
  session: OpsSession,
  id: string,
  earlier: number,
  err: Error,
): Promise<OpsError> {
  const free = await session.exec(`df -Pk ${BACKUPS_DIR} | tail -1 | awk '{print $4}'`, [], {
    allowFailure: true,
  });
  const full = NO_SPACE.test(err.message) || Number(free.stdout.trim()) < 256;
  const vol = session.settings.names.backupsVolume;
  return failure(
    `Backup ${id} failed${full ? ": no space left in the backups volume" : ""}. No snapshot was written; the ${earlier} earlier backup(s) are untouched.\n` +
      `Cause: ${err.message}`,
    full
      ? `Free space on the volume ${vol} or lower \`edms:backup.keep\` (then \`edms-ops backups prune --stack ${session.settings.stack}\`), and retry.`
      : UNREADABLE.test(err.message)
        ? `Make them readable or remove them (paths under ${MEDIA_DIR} are in the media volume ${session.settings.names.mediaVolume}): ` +
          `check the disk and permissions (\`dmesg\`, \`ls -l\` in a container with the volume), then retry \`edms-ops backup --stack ${session.settings.stack}\`.`
        : `Retry with \`edms-ops backup --stack ${session.settings.stack}\`; if it fails again, check the repository with \`edms-ops verify <id>\`.`,
  );
}
