/**
 * Backups are restic snapshots in the stack's repository (`<prefix>_backups` volume, see restic.ts): one
 * snapshot per backup holding the database dump (`pg_dump -Fc -Z0`, see dump.ts, in the same MVCC snapshot
 * as the manifest's row counts), the manifest, and the media volume
 * with the previous snapshot as parent, so unchanged media files are not even read again. restic writes a
 * snapshot only after all its data is stored: a killed or failed backup never appears in the list.
 */
import { Settings, databaseIdentity } from "../../model/settings";
import { allSettledOrThrow, failure } from "../core/errors";
import { formatBytes, lastLine, progress, warn } from "../core/log";
import { hasSchema, requirePostgres } from "../database/postgres";
import { holdsLock, OpsSession, withSession } from "../engine/session";
import { refuseDuringRestore } from "../store/markers";
import { ensureRepository, sessionSnapshots } from "../store/catalog";
import { Manifest, MediaCount } from "../store/manifest";
import { startOffsiteCopy } from "../store/offsiteCopy";
import { describeLabel, readRestoreRecord, schemaRelease } from "../store/schemaRelease";
import { applyRetention } from "../store/prune";
import {
  BackupEntry,
  backupTags,
  MANIFEST_FILE,
  MEDIA_DIR,
  MEDIA_EXCLUDE,
  BackupSummary,
  parseBackupSummary,
  STAGE_DIR,
  unreadableItems,
} from "../store/restic";
import { dumpDatabase, resticProgress } from "./dump";
import { BackupRequest, checkBackupRequest, newId } from "./request";

export type { BackupRequest } from "./request";
import { pullBucket } from "./bucket";
import { holdsOnlyBootstrap, readBootstrapRecord } from "../store/bootstrap";
import { adoptHistory, Deployment, stageHistory } from "../store/history";
import { nothingToBackUp } from "./emptyDatabase";
import { backupFailure, unreadableFailure, VANISHED } from "./backupFailure";
import {
  MEDIA_COUNT_SCRIPT,
  mediaCountProblems,
  parseMediaCount,
  requireProbeFilesOnly,
} from "./mediaCount";

export interface BackupResult {
  readonly manifest: Manifest;
  readonly entry: BackupEntry;
}

/**
 * Takes a backup; null when the database has no schema yet (fresh deploy). Its dump, and all that reads the
 * data, starts once `dumpAfter` resolves (web and worker stopped); the repository and records are read before.
 */
export async function createBackup(
  settings: Settings,
  request: BackupRequest,
  dumpAfter: Promise<unknown> = Promise.resolve(),
): Promise<BackupResult | null> {
  checkBackupRequest(request);
  await requirePostgres(settings);
  if (!request.emptyDatabase && !(await hasSchema(settings))) {
    await nothingToBackUp(settings);
    return null;
  }
  const nested = holdsLock(settings);
  const result = await withSession(
    settings,
    `backup --reason ${request.reason}`,
    async (session) => {
      // No caller needs one then: a restore takes its undo before it writes the marker and none on a re-run,
      // and the scheduler skips (and records it) before it asks.
      const refused = refuseDuringRestore(session, "backing up");
      // The dump (the bulk of a backup's fixed cost) starts its client and psql session now, and takes its
      // snapshot once nothing writes and no restore is in progress; restic meanwhile checks the repository
      // and lists the snapshots, each on its own core. Its failure is handled where it is awaited.
      const ready = Promise.all([refused, dumpAfter]);
      const stop = new AbortController();
      const dump = dumpDatabase(session, stop.signal, ready);
      dump.catch(() => undefined);
      // Bucket media: the mirror is brought up to date beside the dump, once nothing writes (as the dump).
      const mirror = settings.media ? ready.then(() => pullBucket(settings)) : undefined;
      mirror?.catch(() => undefined);
      // The media are counted beside the dump too, once the mirror is done (what restic then reads).
      const counted = session.hasMedia
        ? ready.then(() => mirror).then(() => countMedia(session, MEDIA_DIR))
        : undefined;
      counted?.catch(() => undefined);
      try {
        await refused;
        await ensureRepository(session);
        return await backupBesideDump(session, request, { dump, mirror, counted });
      } catch (err) {
        // A dump still running must not outlive the lock (a plaintext copy written with nobody holding it),
        // nor the mirror's update or the count started beside it.
        stop.abort();
        await Promise.allSettled([dump, mirror, counted]);
        throw err;
      }
    },
  );
  if (settings.backup.offsite) {
    // Outside the stack lock, under its own: nothing waits for the off-host copy but this command.
    await startOffsiteCopy(settings, nested ? "background" : (request.offsiteCopy ?? "wait"));
  }
  return result;
}

/** What runs beside the dump from the start: the dump itself, the bucket's mirror, the media count. */
interface Beside {
  readonly dump: ReturnType<typeof dumpDatabase>;
  readonly mirror?: Promise<void>;
  readonly counted?: Promise<MediaCount>;
}

/** The backup once its dump has started: the listing, the label, the snapshot and retention. */
async function backupBesideDump(
  session: OpsSession,
  request: BackupRequest,
  { dump, mirror, counted }: Beside,
): Promise<BackupResult> {
  const { settings } = session;
  // The host's clock is read while restic lists the snapshots (and the bucket's mirror is updated).
  const [before, createdAt] = await Promise.all([
    sessionSnapshots(session),
    session.hostTime(),
    mirror,
  ]);
  // A new host's history is recovered from the repository first, so this snapshot carries all of it.
  const deployments = await adoptHistory(session, before, "lrestic");
  const earlier = before.length;
  const id = newId(
    createdAt,
    request.reason,
    before.map((b) => b.id),
  );
  progress(`backup ${id} of ${settings.stack}`);
  let result: BackupResult;
  try {
    result = await snapshotBackup(session, {
      id,
      request,
      parent: before[before.length - 1],
      dump,
      counted,
      createdAt,
      deployments,
    });
  } catch (err) {
    throw await backupFailure(session, id, earlier, err as Error);
  }
  await afterBackup(session, before, result.entry);
  return result;
}

/** Retention (never of the new backup); a failure leaves the backup complete. */
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
}

interface SnapshotPlan {
  readonly id: string;
  readonly request: BackupRequest;
  readonly parent?: BackupEntry;
  /** The dump, started with the session. */
  readonly dump: ReturnType<typeof dumpDatabase>;
  /** The media, counted beside the dump: the first attempt's count. */
  readonly counted?: Promise<MediaCount>;
  /** The Docker host's clock when the backup began (its id's time). */
  readonly createdAt: string;
  /** The host's deployment history, as adopted at the start: what labels the backup. */
  readonly deployments: readonly Deployment[];
}

/** The plan once the dump is taken: the release label comes from the dump's own migration state. */
interface LabelledPlan extends SnapshotPlan {
  readonly version: string | null;
}

/** Attempts at a snapshot whose media fell short of their count (files deleted between count and read). */
const SNAPSHOT_ATTEMPTS = 2;

/** The dump, its release label and bootstrap flag: the manifest without its media count. */
async function prepareSnapshot(session: OpsSession, planned: SnapshotPlan) {
  const { settings } = session;
  const [createdAt, identity] = [planned.createdAt, databaseIdentity(settings)];
  // The records the label and the bootstrap tag need are read while the dump runs.
  const [{ tables, objects, migrations, databaseState, database }, bootstrapRecord, restored] =
    await Promise.all([planned.dump, readBootstrapRecord(session), readRestoreRecord(session)]);
  const label = await schemaRelease(session, migrations, planned.deployments, restored);
  progress(`backup ${planned.id} is labelled ${describeLabel(label)}`);
  const plan: LabelledPlan = { ...planned, version: label.release };
  const bootstrap = holdsOnlyBootstrap(bootstrapRecord, identity, tables);
  if (bootstrap) {
    progress("the database holds only what the bootstrap wrote: tagged `bootstrap`");
  }
  const base: Manifest = {
    format: 2,
    id: plan.id,
    stack: settings.stack,
    environment: settings.environment,
    reason: plan.request.reason,
    createdAt,
    version: plan.version,
    ...(plan.request.targetVersion ? { targetVersion: plan.request.targetVersion } : {}),
    postgresVolume: identity,
    database,
    tables,
    objects,
    migrations,
    databaseState,
  };
  return { plan, base, bootstrap, createdAt };
}

async function snapshotBackup(session: OpsSession, planned: SnapshotPlan): Promise<BackupResult> {
  const { settings } = session;
  const { plan, base, bootstrap, createdAt } = await prepareSnapshot(session, planned);
  const database = base.database;
  // Into the stage beside the dump (which empties the stage first, so not before it), while media are counted.
  const staging = stageHistory(session);
  for (let attempt = 1; ; attempt += 1) {
    // Counted before restic reads the volume, in the same container and with the same exclusion: beside the
    // dump at first, right before restic once a file deleted in between made a snapshot fall short.
    const [media] = await allSettledOrThrow([
      session.hasMedia
        ? attempt === 1 && plan.counted
          ? plan.counted
          : countMedia(session, MEDIA_DIR)
        : undefined,
      staging,
      session.hasMedia ? requireProbeFilesOnly(session) : undefined,
    ]);
    const manifest: Manifest = media ? { ...base, media } : base;
    // What restic stores besides the media: the staged folder (dump, manifest, history), counted alike, in
    // the same call that writes the manifest.
    const staged = await writeManifest(session, manifest, media !== undefined);
    progress(
      `storing snapshot (media ${media ? `${media.files} files, ${formatBytes(media.bytes)}, incremental from ${plan.parent?.id ?? "nothing: first backup"}` : "volume missing, skipped"})`,
    );
    const stored = await storeSnapshot(session, plan, bootstrap, attempt < SNAPSHOT_ATTEMPTS);
    if ("vanished" in stored) {
      warn(
        `${stored.vanished.join("; ")}: deleted while the backup read them; taking the snapshot again`,
      );
      continue;
    }
    const { summary } = stored;
    const short = media && staged ? mediaShortfall(summary, media, staged) : [];
    if (short.length === 0) {
      reportStored(plan.id, summary, database.bytes);
      return {
        manifest,
        entry: backupEntry(session, plan, summary.snapshot_id, createdAt, bootstrap),
      };
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
function mediaShortfall(summary: BackupSummary, counted: MediaCount, staged: MediaCount): string[] {
  const stored = {
    files: summary.total_files_processed - staged.files,
    bytes: summary.total_bytes_processed - staged.bytes,
  };
  return mediaCountProblems("the snapshot", counted, stored);
}

/** The manifest into the stage; then, when `count`, the stage's files and bytes (as countMedia). */
async function writeManifest(
  session: OpsSession,
  manifest: Manifest,
  count: boolean,
): Promise<MediaCount | undefined> {
  const write = `cat > ${MANIFEST_FILE}`;
  const result = await session.exec(
    count ? `${write}\n${MEDIA_COUNT_SCRIPT}` : write,
    [STAGE_DIR],
    {
      input: JSON.stringify(manifest, null, 2),
    },
  );
  return count ? parseMediaCount(result.stdout) : undefined;
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
  plan: LabelledPlan,
  snapshot: string,
  time: string,
  bootstrap: boolean,
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
    ...(bootstrap ? { bootstrap: true as const } : {}),
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
async function storeSnapshot(
  session: OpsSession,
  plan: LabelledPlan,
  bootstrap: boolean,
  retryVanished: boolean,
): Promise<{ summary: BackupSummary } | { vanished: string[] }> {
  const { settings } = session;
  const tags = backupTags({
    id: plan.id,
    reason: plan.request.reason,
    release: plan.version,
    target: plan.request.targetVersion,
    stack: settings.stack,
    ...(bootstrap ? { bootstrap: true as const } : {}),
  });
  const result = await session.exec(
    `cd / && lrestic backup --json --host "$1" --tag "$2" \${3:+--parent "$3"} --exclude '${MEDIA_EXCLUDE}' ${STAGE_DIR} \${4:+${MEDIA_DIR}}`,
    [settings.stack, tags, plan.parent?.snapshot ?? "", session.hasMedia ? "media" : ""],
    { allowFailure: true, onLine: resticProgress() },
  );
  if (result.code === 0) {
    return { summary: parseBackupSummary(result.stdout) };
  }
  const written = /"snapshot_id":"([0-9a-f]+)"/.exec(result.stdout)?.[1];
  if (written) {
    await forgetSnapshot(session, written);
  }
  if (result.code === 3) {
    const items = unreadableItems(result.stderr);
    // Files users deleted while restic walked the volume are gone from the live data too: the snapshot
    // is taken again (once), and only a file still there but unreadable fails the backup at once.
    if (retryVanished && items.length && items.every((i) => VANISHED.test(i))) {
      return { vanished: items };
    }
    throw unreadableFailure(settings.stack, items);
  }
  throw failure(
    `restic backup failed: ${lastLine(result.stderr)}`,
    `Retry; if it fails again, check the repository with \`edms-ops verify <id> --stack ${settings.stack}\`.`,
  );
}
