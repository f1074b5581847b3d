/**
 * A drill proves that a backup brings back a working system, which `verify` (bytes intact, dump restores,
 * counts equal) does not: the database goes into a scratch PostgreSQL and the media into a scratch volume,
 * then the backup's *own release* runs against them (`manage.py check --database default`, `migrate
 * --check`), the migration state and row counts are compared with the manifest, the media of a sample plus
 * every file changed since the previous passed drill are checksummed against the live file (when it is
 * still the one the backup read), and an operator's `--check CMD` runs in the same container. Once a drill
 * has passed, a later one without `--check` or a rehearsal restores only those files, after restic read
 * every media file's data back (media.ts). A JSON record of every drill, passed or failed, goes to
 * `drills/` in the backups volume.
 *
 * Live data is never touched: the scratch server and the release container sit on a network of their own
 * (`--internal`), the live media volume is mounted read-only and only for checksums. Scratch containers,
 * network and volume are removed on every exit path the process sees (success, failure, exception,
 * SIGINT/SIGTERM/SIGHUP); what a SIGKILL leaves is removed by the next drill before it starts.
 */
import { REASONS } from "../../../model/hooks";
import * as os from "os";
import { allSettledOrThrow, failure } from "../../core/errors";
import { OpsSession } from "../../engine/session";
import { isGone, readManifest } from "../../store/catalog";
import { Manifest } from "../../store/manifest";
import { DrillRecord } from "../../store/records";
import { BackupEntry, MEDIA_DIR } from "../../store/restic";
import { removeStagedDump, restoreIntoScratch, ScratchDump, stageDump } from "../scratchRestore";
import { withScratchDatabase } from "../scratchServer";
import { requireDrillRoom } from "../space";
import { Checks, DAMAGED } from "./checks";
import { checkMedia, MediaPlan, MediaTally, planMedia, restoreMedia } from "./media";
import { latestPassedDrill, writeDrillRecord } from "./records";
import { databaseChecks, REHEARSAL, rehearsalTarget, releaseChecks } from "./release";
import { sessionHistory } from "../../store/history";
import type { Deployment } from "../../store/records";
import { inScratch, Scratch } from "./scratch";

export type { DrillCheck, DrillRecord } from "../../store/records";
export { chooseMedia, parseDiff, parseMediaListing } from "./media";
export { checksumInput, compareChecksums } from "./checksums";
export { DRILLS_DIR, drillResults, latestPassedDrill, readLatestDrill } from "./records";
export { removeDrillLeftovers } from "./scratch";

export const DEFAULT_SAMPLE = 20;

export interface DrillOptions {
  readonly trigger: string;
  /** Shell command run in the release container against the restored data. */
  readonly check?: string;
  /** Media files checksummed besides those changed since the previous drill. */
  readonly sample?: number;
}

/** One drill in progress: what every step reads, and where it tallies. */
interface DrillRun {
  readonly session: OpsSession;
  readonly entry: BackupEntry;
  readonly manifest: Manifest;
  readonly scratch: Scratch;
  readonly checks: Checks;
  readonly options: DrillOptions;
  readonly previous: DrillRecord | null;
  readonly media: MediaTally;
  /** history.jsonl: a release ran by the digest its deployment recorded. */
  readonly history: readonly Deployment[];
}

export async function drillBackup(
  session: OpsSession,
  entry: BackupEntry,
  options: DrillOptions,
): Promise<DrillRecord> {
  // The backup under drill is never what a retention run in this operation forgets.
  session.pinned.add(entry.id);
  const clock = Date.now();
  const checks = new Checks();
  const { startedAt, previous, history, manifest } = await firstReads(session, entry, checks);
  const media: MediaTally = { files: 0, checksums: {}, changed: null };
  if (manifest) {
    await inScratch(
      session.settings,
      checks,
      (scratch) => roomFor(session, entry, manifest, scratch),
      (scratch) =>
        runDrill({ session, entry, manifest, scratch, checks, options, previous, media, history }),
    );
  }
  const record = drillRecord(session, entry, options, {
    startedAt,
    finishedAt: await session.hostTime(),
    seconds: (Date.now() - clock) / 1000,
    checks,
    manifest,
    media,
    previous,
  });
  await writeDrillRecord(session, record);
  return record;
}

/**
 * A drill's first reads, asked at once: the manifest's restic start is most of the wait. The manifest's
 * check records its own failure (manifest undefined then); a failure of the others is thrown once it is
 * done, and so is the refusal of a backup forgotten since it was looked up (nothing to drill, and no failed
 * drill to record against it).
 */
async function firstReads(session: OpsSession, entry: BackupEntry, checks: Checks) {
  let manifest: Manifest | undefined;
  let gone: Error | undefined;
  const [startedAt, previous, history] = await allSettledOrThrow([
    session.hostTime(),
    latestPassedDrill(session),
    // Only to choose images by: a drill without it runs them by their tags, as before it was kept.
    sessionHistory(session).catch((): Deployment[] => []),
    checks.run("manifest", async () => {
      manifest = await readManifest(session, entry).catch((err: Error) => {
        gone = isGone(err) ? err : undefined;
        throw err;
      });
      return `release ${manifest.version ?? "none"}, ${Object.keys(manifest.tables).length} tables`;
    }),
  ]);
  if (gone) {
    throw gone;
  }
  return { startedAt, previous, history, manifest: manifest as Manifest | undefined };
}

interface DrillOutcome {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly seconds: number;
  readonly checks: Checks;
  readonly manifest: Manifest | undefined;
  readonly media: MediaTally;
  readonly previous: DrillRecord | null;
}

/** The record of one drill; the rehearsal is kept apart from the backup's own checks. */
function drillRecord(
  session: OpsSession,
  entry: BackupEntry,
  options: DrillOptions,
  outcome: DrillOutcome,
): DrillRecord {
  const { checks, media, previous } = outcome;
  const rehearsal = checks.list.find((c) => c.name.startsWith(REHEARSAL));
  const own = checks.list.filter((c) => c !== rehearsal);
  return {
    format: 1,
    id: `${outcome.startedAt.replace(/:/g, "-")}-drill`,
    stack: session.settings.stack,
    backup: entry.id,
    snapshot: entry.snapshot,
    release: outcome.manifest?.version ?? null,
    trigger: options.trigger,
    ranBy: `${os.userInfo().username}@${os.hostname()}`,
    startedAt: outcome.startedAt,
    finishedAt: outcome.finishedAt,
    seconds: outcome.seconds,
    ok: own.every((c) => c.ok),
    checks: own,
    ...(rehearsal ? { rehearsal } : {}),
    media: {
      files: media.files,
      checksums: media.checksums,
      changedSincePreviousDrill: media.changed,
      previousDrill: previous?.id ?? null,
    },
  };
}

/** Refuses the drill before anything is copied when its scratch filesystem cannot hold the backup. */
function roomFor(session: OpsSession, entry: BackupEntry, manifest: Manifest, scratch: Scratch) {
  return requireDrillRoom(session, entry, manifest, {
    media: scratch.volume,
    database: scratch.database,
    dir: session.settings.backup.drillScratch,
  });
}

async function runDrill(run: DrillRun): Promise<void> {
  const { session, entry, scratch } = run;
  const hasMedia = entry.paths.includes(MEDIA_DIR);
  // The media are chosen and come back, and the dump is staged, while the scratch server starts: all overlap.
  const mediaRestored = hasMedia ? prepareMedia(run).catch((err: Error) => err) : null;
  // Scratch in `edms:backup.drillScratch` keeps the drill's copies off Docker's data root, the stage's too.
  const dump: ScratchDump = scratch.database ? "stream" : stageDump(session, entry);
  try {
    await withScratchDatabase(
      session.settings,
      (db) => checkRestored(run, db, mediaRestored, dump),
      scratch.network,
      scratch.database,
    );
  } finally {
    if (dump !== "stream") {
      await removeStagedDump(session, dump);
    }
  }
}

/** The media plan, then the restore it asks for. */
async function prepareMedia(run: DrillRun): Promise<MediaPlan> {
  const { session, entry, options } = run;
  const sample = options.sample ?? DEFAULT_SAMPLE;
  const plan = await planMedia(session, entry, run.previous, sample, releaseReadsMedia(run));
  await restoreMedia(session.settings, entry, run.scratch, plan);
  return plan;
}

/**
 * Whether the release's container may read or write media: an operator's command, or the new release's
 * migrate (the rehearsal), may touch any file, so every one is restored and checked before it runs. A
 * pre-deploy drill with nothing to rehearse runs only `check` and `migrate --check`, which touch none.
 */
function releaseReadsMedia(run: DrillRun): boolean {
  const { session, options } = run;
  return (
    options.check !== undefined ||
    (rehearses(options) && rehearsalTarget(session.settings, run.manifest, run.history) !== null)
  );
}

/**
 * Every check that needs the scratch database `db` up: the database's, then the media's and the release's.
 * The release's run beside the media checksums, once the media are restored, unless it may touch media
 * (their checks are recorded after the media's all the same).
 */
async function checkRestored(
  run: DrillRun,
  db: string,
  /** null: the backup has no media. */
  mediaRestored: Promise<MediaPlan | Error> | null,
  dump: ScratchDump,
): Promise<void> {
  const { session, entry, manifest, checks } = run;
  const restored = await checks.run("database restore", async () => {
    const problems = await restoreIntoScratch(session, entry, manifest, db, dump);
    if (problems.length) {
      throw failure(problems.join("; "), DAMAGED);
    }
    return `${manifest.database.bytes} bytes, sha256 as recorded, ${manifest.databaseState ? "owners, grants and database settings restored" : "pg_restore in one transaction"}`;
  });
  // The plaintext copy goes as soon as it is restored (runDrill's end removes it on any other way out).
  const removed = dump === "stream" ? undefined : removeStagedDump(session, dump);
  if (restored) {
    await databaseChecks(session.settings, manifest, db, checks);
  } else {
    ["row counts", "migration state"].forEach((n) => checks.skip(n, "database did not restore"));
  }
  await removed;
  if (releaseReadsMedia(run)) {
    await mediaChecks(run, mediaRestored, checks);
    await releaseAgainst(run, db, restored, checks);
    return;
  }
  await checks.together([
    (own) => mediaChecks(run, mediaRestored, own),
    // Not before the media are in: Docker fills an empty volume with what the image holds at the mount point.
    (own) => Promise.resolve(mediaRestored).then(() => releaseAgainst(run, db, restored, own)),
  ]);
}

/** The media restore's outcome, then the checksums of what it restored. */
async function mediaChecks(
  run: DrillRun,
  mediaRestored: Promise<MediaPlan | Error> | null,
  checks: Checks,
): Promise<void> {
  const { session, scratch } = run;
  let plan: MediaPlan | undefined;
  await checks.run("media restore", async () => {
    if (!mediaRestored) {
      return "no media in this backup";
    }
    const prepared = await mediaRestored;
    if (prepared instanceof Error) {
      throw prepared;
    }
    plan = prepared;
    return plan.whole
      ? `${plan.files.length} files restored with restic --verify`
      : `the data of ${plan.files.length} files read back by restic dump, ${plan.chosen.length} restored with --verify`;
  });
  if (plan) {
    const restoredPlan = plan;
    await checks.run("media checksums", () =>
      checkMedia(session, scratch, restoredPlan, run.media, run.manifest.media),
    );
  } else if (mediaRestored) {
    checks.skip("media checksums", "media did not restore");
  }
}

/** The backup's own release against the scratch database, recorded in `checks`: skipped when it did not restore. */
async function releaseAgainst(
  run: DrillRun,
  db: string,
  restored: boolean,
  checks: Checks,
): Promise<void> {
  const { session, manifest, scratch, options } = run;
  if (!restored) {
    ["manage.py check", "migrate --check", ...(options.check ? ["--check"] : [])].forEach((n) =>
      checks.skip(n, "database did not restore"),
    );
    return;
  }
  await releaseChecks(session.settings, manifest, scratch, db, checks, {
    check: options.check,
    rehearse: rehearses(options),
    history: run.history,
  });
}

/** Only the pre-deploy drill rehearses: the release it names is the one about to migrate production. */
function rehearses(options: DrillOptions): boolean {
  return options.trigger === REASONS.preDeploy;
}
