/**
 * A restore's undo: web and worker stopped and the state before the first attempt backed up, then recorded
 * in the restore marker before the live database is touched (see restore.ts).
 */
import { REASONS } from "../../model/hooks";
import { Settings } from "../../model/settings";
import { lastLine, progress } from "../core/log";
import { docker } from "../engine/docker";
import { runningAppContainers, startEach } from "../engine/services";
import { OpsSession } from "../engine/session";
import { markerScript, RESTORE_MARKER, RestoreMarker } from "../store/markers";
import { BackupEntry } from "../store/restic";
import { hasSchema } from "../database/postgres";
import { waitForAppSessions } from "../database/appRole";
import { createBackup } from "./create";
import { hasMediaFiles } from "./mediaCount";

/** What this attempt starts from: the marker of an interrupted one, or nothing. */
export interface Attempt {
  readonly earlier: RestoreMarker | null;
  readonly undo: string | null;
  readonly writers: string[];
}

/**
 * Stops the running web and worker and waits until their sessions are gone from PostgreSQL (a statement a
 * stopped process sent may still commit): after it, nothing the app does changes the data. The stopped ones.
 * `found` learns them before the stop begins: when the stop or the wait fails, they are still the ones to
 * start again (some may be stopped already).
 */
export async function stopWriters(
  settings: Settings,
  found: (writers: string[]) => void = () => undefined,
): Promise<string[]> {
  const writers = await runningAppContainers(settings);
  found(writers);
  if (writers.length) {
    await docker(["stop", ...writers]);
  }
  await waitForAppSessions(settings);
  return writers;
}

/** Starts again the writers a failed run stopped; says how that went, for its error message. */
export async function startAgain(writers: readonly string[]): Promise<string> {
  if (!writers.length) {
    return "";
  }
  const started = await startEach(writers, { allowFailure: true });
  return started.code === 0
    ? " and web/worker are started again"
    : `, but starting ${writers.join(", ")} again failed (${lastLine(started.stderr)}): start them with \`docker start ${writers.join(" ")}\``;
}

/**
 * The undo of this restore, recorded in the marker before the live database is touched: the one an
 * interrupted attempt recorded, else a backup of the state now (none for a database without a schema).
 */
async function recordUndo(
  session: OpsSession,
  entry: BackupEntry,
  attempt: Attempt,
  stopped: Promise<unknown>,
): Promise<Attempt> {
  const { earlier } = attempt;
  // When this attempt began touching things, asked now rather than after the backup.
  const started = earlier ? Promise.resolve(earlier.started) : session.hostTime();
  started.catch(() => undefined);
  let undo = attempt.undo;
  if (earlier) {
    progress(
      `an earlier restore of ${earlier.id} did not finish: its undo ${undo ?? "(none: the database was empty)"} stays the undo; no backup is taken of the half-restored state`,
    );
  } else if (await hasSchema(session.settings)) {
    progress("backing up the current state first (the undo of this restore)");
    undo =
      (await createBackup(session.settings, { reason: REASONS.preRestore }, stopped))?.entry.id ??
      null;
  } else if (await stopped.then(() => hasMediaFiles(session.settings))) {
    // An emptied database: its media may hold uploads newer than the backup, which the restore deletes.
    progress(
      "the database has no schema, but media holds files: backing them up first (the undo of this restore)",
    );
    undo =
      (
        await createBackup(
          session.settings,
          { reason: REASONS.preRestore, emptyDatabase: true },
          stopped,
        )
      )?.entry.id ?? null;
  }
  if (undo) {
    session.pinned.add(undo);
  }
  // Nothing is written before web and worker have stopped (the backup's dump waits for it too).
  await stopped;
  const marker: RestoreMarker = {
    id: entry.id,
    undo,
    started: await started,
  };
  await session.exec(markerScript(), [RESTORE_MARKER], { input: JSON.stringify(marker) });
  return { ...attempt, undo };
}

/**
 * Web and worker stopped, and the undo recorded. The undo backup's reads of the repository and the records
 * run while they stop; its dump, and everything else that reads the data, only once they have. The ones
 * found running are in the attempt even when the stop, the wait for their sessions or the undo fails, so they
 * are started again.
 */
export async function stopAndRecordUndo(
  session: OpsSession,
  entry: BackupEntry,
  attempt: Attempt,
): Promise<{ attempt: Attempt; error?: Error }> {
  let writers: string[] = [];
  const stopping = stopWriters(session.settings, (found) => (writers = found)).then((stopped) => {
    if (stopped.length) {
      progress(`stopped ${stopped.join(", ")} so nothing writes during the restore`);
    }
  });
  const undoing = recordUndo(session, entry, attempt, stopping);
  const [stopped, undone] = await Promise.allSettled([stopping, undoing]);
  if (stopped.status === "rejected") {
    return { attempt: { ...attempt, writers }, error: stopped.reason as Error };
  }
  return undone.status === "rejected"
    ? { attempt: { ...attempt, writers }, error: undone.reason as Error }
    : { attempt: { ...undone.value, writers } };
}
