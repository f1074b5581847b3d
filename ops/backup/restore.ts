/**
 * Restore: a backup whose repository checks and whose media read back; its database restored beside the live
 * one and checked against the manifest while web/worker still serve (that is its test-restore: a backup that
 * does not restore is refused with nothing stopped); then web and worker stopped *before* the undo backup, so
 * nothing written in between is lost from both states; the side database swapped in by one atomic rename (see
 * sidedb.ts); media restored from the snapshot (only what differs: restic ≥ 0.17, the minimum; never through
 * a scratch copy); then row counts, objects and the media file count must equal the backup. A marker in the
 * backups volume names an interrupted restore until one completes, and `health` fails while it is there (and
 * the scheduler takes no backup).
 *
 * The marker holds the true undo: the backup of the state before the first attempt, written before the live
 * database is touched. A later attempt (of the same backup, another one, or the undo itself) finds it and
 * keeps that undo: it takes no backup of the half-restored state, which would only push the true undo out.
 */
import { requireOwnPrefix } from "./bucket";
import { databaseIdentity, Settings } from "../../model/settings";
import { BackupEntry } from "../store/restic";
import { Attempt, startAgain, stopAndRecordUndo } from "./undo";
import { listMediaAhead } from "./mediaCount";
import { mediaProblems, restoreMedia } from "./restoreMedia";
import { Manifest } from "../store/manifest";
import { runningVersion } from "../engine/services";
import { inventory, requirePostgres, stackServer } from "../database/postgres";
import { requireRestoreRights } from "../database/rights";
import { allSettledOrThrow, EXIT, failure, incomplete, OpsError, refuse } from "../core/errors";
import { progress } from "../core/log";
import { HostFault } from "../core/hostFault";
import { RESTORE_MARKER, sessionRestoreMarker } from "../store/markers";
import { recordRestored } from "../store/schemaRelease";
import { MEDIA_DIR } from "../store/restic";
import { servingContainers, startEach } from "../engine/services";
import { OpsSession, withSession } from "../engine/session";
import {
  dropReplaced,
  dropSide,
  reportCreatedRoles,
  restoreBeside,
  swapIn,
} from "../database/sidedb";
import { requireRestoreRoom, snapshotMediaBytes } from "./space";
import { inventoryProblems, readMedia, verifyReadingManifest } from "./verify";

export interface RestoreResult {
  /** The state before the first attempt: null when there was none, or when that is what was restored. */
  readonly undoBackup: string | null;
  /** The backup an interrupted earlier attempt was restoring, when this run finished it. */
  readonly resumed: string | null;
  /** This restored the undo of an interrupted attempt: the stack is back at the state before it. */
  readonly wentBack: boolean;
  readonly restarted: boolean;
  /** Release the restored data belongs to. */
  readonly release: string | null;
}

/**
 * Restores the backup `lookUp` names, looked up inside the restore's session (under the stack lock, so no
 * retention, forget or other restore changes the listing between the choice and the restore); `holder` is
 * what the lock names while it runs.
 */
export async function restoreBackup(
  settings: Settings,
  holder: string,
  lookUp: (session: OpsSession) => Promise<BackupEntry>,
): Promise<RestoreResult> {
  await requirePostgres(settings);
  const server = stackServer(settings);
  if (server.kind === "external") {
    // A managed database's admin may lack what the swap needs: said up front, nothing changed.
    await requireRestoreRights(settings, server, server.database);
  }
  return withSession(settings, holder, async (session) => {
    const target = await lookUp(session);
    session.pinned.add(target.id);
    try {
      return await restoreInSession(session, target);
    } finally {
      session.pinned.delete(target.id);
    }
  });
}

function failedVerification(settings: Settings, id: string, problems: string[]): OpsError {
  return failure(
    `Backup ${id} failed verification; nothing was restored or changed:\n  - ${problems.join("\n  - ")}`,
    `Choose another backup: \`edms-ops backups list --stack ${settings.stack}\`.`,
  );
}

/**
 * The backup's manifest, once the repository checks and the stack has somewhere to put its media. Its data is
 * read by `restoreSide`: the dump restored beside the live database, the media read back meanwhile.
 */
async function restorableManifest(session: OpsSession, entry: BackupEntry): Promise<Manifest> {
  const { settings } = session;
  // The snapshot's listing (the room check's, the read-back's and the integrity check's) beside the checks.
  listMediaAhead(session, entry);
  const { report, manifest } = await verifyReadingManifest(session, entry, { data: false });
  if (!report.ok || !manifest) {
    throw failedVerification(settings, entry.id, report.problems);
  }
  refuseForeignDatabase(settings, entry.id, manifest);
  if (settings.media) {
    await requireOwnPrefix(settings, "the restore");
  }
  if (entry.paths.includes(MEDIA_DIR) && !session.hasMedia) {
    throw refuse(
      `The media volume ${settings.names.mediaVolume} is missing, so the backup's media have nowhere to go.`,
      `Run \`pulumi up --stack ${settings.stack}\` to create it, then retry. Nothing was restored or changed.`,
    );
  }
  return manifest;
}

/**
 * Onto an external database, only its own backups: another server's dump names owners (the stack's own
 * superuser `edms`) its admin cannot become, and mapping them is not built yet.
 */
function refuseForeignDatabase(settings: Settings, id: string, manifest: Manifest): void {
  const here = databaseIdentity(settings);
  if (settings.database && manifest.postgresVolume !== here) {
    throw refuse(
      `Backup ${id} was taken of another database (${manifest.postgresVolume}), not of ${here}: restoring it onto an external database is not built yet (its objects' owners would be roles the admin cannot become). Nothing was restored or changed.`,
      `Load it by hand: \`edms-ops backups export ${id} --to DIR --plain --stack ${settings.stack}\`, then \`pg_restore --no-owner --role ${settings.database.user} -d ${settings.database.name} DIR/${id}/db.dump\` into an empty database.`,
    );
  }
}

/** Media and the integrity check, after the database swap: a failure here says how to finish or go back. */
async function finishAfterSwap(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  undoBackup: string | null,
): Promise<void> {
  const { settings } = session;
  // The swapped-in database's counts are read while the media are restored: nothing writes to it now. The
  // restore's record and the replaced database's drop go beside them too (a failure of either is only said:
  // the drop is then done by the next restore's cleanup).
  const counted = inventory(settings);
  counted.catch(() => undefined);
  // Settled, never rejected: a client that cannot even start must not end the process mid-restore.
  const aside = Promise.allSettled([recordRestored(session, manifest), dropReplaced(settings)]);
  try {
    await restoreMedia(session, entry);
    await checkIntegrity(session, entry, manifest, undoBackup, counted);
  } catch (err) {
    await counted.catch(() => undefined); // not left running past the lock
    throw incompleteRestore(settings.stack, entry.id, undoBackup, (err as Error).message);
  } finally {
    await aside;
  }
}

/**
 * The database is restored and committed, the media are not: say so, how to finish or go back, and to keep
 * `pulumi up` off the stack until then. Its refresh finds web/worker stopped and the docker provider starts
 * them again in place; behind the proxy no deploy hook runs, so not even the health gate sees the marker.
 */
export function incompleteRestore(
  stack: string,
  id: string,
  undoBackup: string | null,
  cause: string,
): OpsError {
  const undo = undoBackup
    ? ` To go back to the state before, run \`edms-ops restore ${undoBackup} --stack ${stack}\`.`
    : "";
  return incomplete(
    `Restore of ${id} is INCOMPLETE: the database is restored, the media are not (or do not match). ` +
      `Web/worker stay stopped.\nCause: ${cause}`,
    `Run the same restore again to finish it, before any \`pulumi up\` (it would start web/worker again on the half-restored data).${undo}`,
  );
}

/** Errors of swaps that may have committed: handled as after the swap. */
const unknownSwaps = new WeakSet<Error>();

/**
 * The restored database in, the live one out. Postgres stopped during it cannot say whether it committed: as
 * if it did, the marker and the undo stay and web/worker stay stopped; the re-run finishes it either way.
 */
async function swap(settings: Settings, entry: BackupEntry, attempt: Attempt): Promise<void> {
  try {
    await swapIn(settings);
  } catch (err) {
    if (err instanceof OpsError && err.exitCode === EXIT.incomplete) {
      const unknown = swapUnknown(settings.stack, entry.id, attempt.undo, err);
      unknownSwaps.add(unknown);
      throw unknown;
    }
    throw err;
  }
}

/** The swap's outcome is unknown (postgres stopped during it): how to finish, or go back. */
function swapUnknown(stack: string, id: string, undo: string | null, err: OpsError): OpsError {
  const back = undo
    ? ` To go back to the state before, run \`edms-ops restore ${undo} --stack ${stack}\`.`
    : "";
  return incomplete(
    `Restore of ${id} is INCOMPLETE. ${err.message} Web/worker stay stopped.`,
    `Start postgres, then run \`edms-ops restore ${id} --stack ${stack}\` again to finish it, before any \`pulumi up\`.${back}`,
  );
}

/** A failure before the swap: nothing changed by this attempt; the stack is as before it. */
async function failedBeforeSwap(
  session: OpsSession,
  entry: BackupEntry,
  attempt: Attempt,
  cause: Error,
): Promise<OpsError> {
  const { settings } = session;
  if (attempt.earlier) {
    await dropSide(settings).catch(() => undefined);
    // The earlier attempt's state stays, and so do its marker and its undo; web/worker stay stopped.
    const undo = attempt.undo
      ? ` To go back to the state before the first attempt, run \`edms-ops restore ${attempt.undo} --stack ${settings.stack}\`.`
      : "";
    return incomplete(
      `Restore of ${entry.id} failed before this attempt touched the live database; the stack stays as the ` +
        `interrupted restore of ${attempt.earlier.id} left it, web/worker stopped. Cause: ${cause.message}`,
      `Fix the cause, then run the restore again, before any \`pulumi up\`.${undo}`,
    );
  }
  await dropSide(settings).catch(() => undefined);
  // Nothing was changed: the old state serves again, and no marker claims otherwise.
  await session.exec('rm -f "$1"', [RESTORE_MARKER]).catch(() => undefined);
  // The host's fault is no reason to choose another (older) backup: its own fix, which says what to free
  // (on the Docker host or the external server), is part of the cause.
  const host = cause instanceof HostFault;
  return failure(
    `Restore of ${entry.id} failed before the live database was touched; nothing was changed` +
      `${await startAgain(attempt.writers)}. Cause: ${host ? cause.describe() : cause.message}`,
    host
      ? `Retry \`edms-ops restore ${entry.id} --stack ${settings.stack}\` once that is done: the same backup, which the host stopped, not the backup.`
      : `Fix the cause, then retry \`edms-ops restore ${entry.id} --stack ${settings.stack}\`, or choose another backup.`,
  );
}

/**
 * The database first, beside the live one and checked, while web/worker still serve: the restore's
 * test-restore; every media blob is read back meanwhile (the other core), as verify reads them. A backup that
 * does not restore or read is refused here, with nothing stopped or changed. Returns the roles it created.
 */
async function restoreSide(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  attempt: Attempt,
): Promise<string[]> {
  const [settled, media] = await Promise.allSettled([
    restoreBeside(session, entry, manifest),
    readMedia(session, entry, manifest),
  ]);
  // The host stopped the database's restore, but the media read back damaged: the damage is what is said.
  const side =
    settled.status === "rejected" &&
    settled.reason instanceof HostFault &&
    media.status === "fulfilled" &&
    media.value.length
      ? { status: "fulfilled" as const, value: { problems: [] } }
      : settled;
  if (side.status === "rejected" || media.status === "rejected") {
    const cause = (
      side.status === "rejected" ? side.reason : (media as PromiseRejectedResult).reason
    ) as Error;
    throw await failedBeforeSwap(session, entry, attempt, cause);
  }
  const restored = side.value;
  if (restored.problems || media.value.length) {
    // Dropped already when the dump failed; not when only the media did.
    await dropSide(session.settings);
    const failed = failedVerification(session.settings, entry.id, [
      ...(restored.problems ?? []),
      ...media.value,
    ]);
    throw attempt.earlier ? await failedBeforeSwap(session, entry, attempt, failed) : failed;
  }
  return restored.roles;
}

/** What a restore starts from, read only: nothing is stopped or changed before it. */
async function preflight(session: OpsSession, entry: BackupEntry) {
  const manifest = await restorableManifest(session, entry);
  const media = await snapshotMediaBytes(session, entry);
  // Asked at once: the room (a refusal, which wins over another failure), the release web runs and an
  // interrupted attempt's marker.
  const [, runningRelease, earlier] = await allSettledOrThrow([
    requireRestoreRoom(session, entry, manifest, media, "Nothing was stopped or changed."),
    runningVersion(session.settings),
    sessionRestoreMarker(session),
  ]);
  return { manifest, media, runningRelease, earlier };
}

async function restoreInSession(session: OpsSession, entry: BackupEntry): Promise<RestoreResult> {
  const { settings } = session;
  const { manifest, media, runningRelease, earlier } = await preflight(session, entry);
  let attempt: Attempt = { earlier, undo: earlier?.undo ?? null, writers: [] };
  const roles = await restoreSide(session, entry, manifest, attempt);
  let touched = false;
  try {
    // The stopped ones are known even when the undo fails: then they are started again.
    const undone = await stopAndRecordUndo(session, entry, attempt);
    attempt = undone.attempt;
    if (undone.error) {
      throw undone.error;
    }
    if (!earlier && attempt.undo) {
      // The undo backup may have taken space on the same disk: the media stage is checked again.
      await requireRestoreRoom(
        session,
        entry,
        manifest,
        media,
        "The live data is unchanged.",
        false,
      );
    }
    // Until the swap the live database is untouched: a failure before it leaves the old state whole.
    await swap(settings, entry, attempt);
    touched = true;
    await finishAfterSwap(session, entry, manifest, attempt.undo);
    await session.exec('rm -f "$1"', [RESTORE_MARKER]);
  } catch (err) {
    throw touched || unknownSwaps.has(err as Error)
      ? err
      : await failedBeforeSwap(session, entry, attempt, err as Error);
  }
  // Code of another release than the backup's would meet a schema it does not expect: leave it stopped and
  // let the redeploy of the backup's release start the right code.
  const sameRelease = manifest.version !== null && manifest.version === runningRelease;
  // Everything that serves, not only what this run stopped: after a killed run, web/worker were stopped by it.
  const serving = sameRelease ? await servingContainers(settings) : [];
  if (serving.length) {
    progress(`starting ${serving.join(", ")}`);
    await startEach(serving);
  }
  reportCreatedRoles(roles);
  return {
    // Restoring the undo itself goes back: there is nothing left to undo.
    undoBackup: attempt.undo === entry.id ? null : attempt.undo,
    resumed: attempt.earlier?.id ?? null,
    wentBack: attempt.earlier !== null && attempt.undo === entry.id,
    restarted: serving.length > 0,
    release: manifest.version,
  };
}

async function checkIntegrity(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  undoBackup: string | null,
  counted: ReturnType<typeof inventory>,
): Promise<void> {
  progress("integrity check: row counts and media files against the backup");
  const problems = inventoryProblems(manifest, await counted, {
    afterRestoreGrants: true,
  });
  if (session.hasMedia && entry.paths.includes(MEDIA_DIR)) {
    problems.push(...(await mediaProblems(session, entry, manifest)));
  }
  if (problems.length) {
    throw failure(
      `Restored data does not match backup ${entry.id}:\n  - ${problems.join("\n  - ")}`,
      undoBackup
        ? `The state before the restore is in backup ${undoBackup}: \`edms-ops restore ${undoBackup} --stack ${session.settings.stack}\` returns to it.`
        : `Check it with \`edms-ops verify ${entry.id} --stack ${session.settings.stack}\` before using the data.`,
    );
  }
}
