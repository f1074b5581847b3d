/**
 * The backups volume (`<prefix>_backups`), the one place that says where each thing in it lives. It is
 * mounted at `/backups` in every container edms-ops runs (the lock container, the read-only toolbox, the
 * scheduler) and holds everything a new host needs besides the off-host copy:
 *
 *   restic/                   the local restic repository (one snapshot per backup)
 *   .keys/                    root-only copies of the repository password and off-host credentials
 *   .cache/                   restic's cache for the off-host repository
 *   history.jsonl             one line per successful deploy (records.ts: Deployment); each snapshot carries
 *                             a copy, so a new host recovers it (history.ts adoptHistory)
 *   .history-adopted          the snapshot whose history copy was last merged into history.jsonl
 *   bootstrap.json            row counts right after the bootstrap of a new database (records.ts: BootstrapRecord)
 *   schedule.jsonl            one line per scheduler start and scheduled attempt (records.ts: ScheduleRecord)
 *   drills/<time>-drill.json  one file per drill, passed or failed (records.ts: DrillRecord)
 *   last-check.json           the newest `restic check` (records.ts: RepositoryCheck)
 *   alerts.json               what the scheduler has alerted on, and its last message (records.ts: AlertState)
 *   last-restore.json         the last restore's backup, release and migrations (records.ts: RestoreRecord)
 *   offsite-copy.json         the newest off-host copy: started, finished, ok, error (records.ts: OffsiteCopy)
 *   .offsite-again            asks a running off-host copy to run once more (a backup made while it ran)
 *   .stack-lock               the stack's operation lock: flock(2) held by the lock container or the scheduler
 *   .writer-lock              flock(2) held by a helper container that writes the repository outside the lock
 *                             container (a killed operation's helper may outlive it: the scheduler waits)
 *   .offsite-lock             flock(2) held by the running off-host copy (its container, or the scheduler)
 *   .snapshots-listed         the last listing of the snapshots, under a fingerprint of what it depends on
 *                             (catalog.ts cachedListing): a listing with nothing changed since needs no restic
 *   .restore-in-progress      marker of an unfinished restore (records.ts: RestoreMarker)
 *   .rollback-in-progress     marker of an unfinished rollback (records.ts: RollbackMarker)
 *   .export-<pid>/ .import-<pid>/ .partial-* .deleting-*   scratch of one operation, removed by the next
 *   <id>/manifest.json        a first-release backup, until `backups import-legacy`
 *
 * Paths only: reading and writing the records goes through records.ts, which checks their shape.
 */
import { OPS_PATHS } from "../../model/containers";

export const BACKUPS_DIR = OPS_PATHS.backups;

export const LAYOUT = {
  repository: `${BACKUPS_DIR}/restic`,
  keysDir: `${BACKUPS_DIR}/.keys`,
  offsiteCache: `${BACKUPS_DIR}/.cache`,
  history: `${BACKUPS_DIR}/history.jsonl`,
  historyAdopted: `${BACKUPS_DIR}/.history-adopted`,
  bootstrapRecord: `${BACKUPS_DIR}/bootstrap.json`,
  schedule: `${BACKUPS_DIR}/schedule.jsonl`,
  drillsDir: `${BACKUPS_DIR}/drills`,
  lastCheck: `${BACKUPS_DIR}/last-check.json`,
  alerts: `${BACKUPS_DIR}/alerts.json`,
  lastRestore: `${BACKUPS_DIR}/last-restore.json`,
  restoreMarker: `${BACKUPS_DIR}/.restore-in-progress`,
  rollbackMarker: `${BACKUPS_DIR}/.rollback-in-progress`,
  offsiteCopy: `${BACKUPS_DIR}/offsite-copy.json`,
  offsiteAgain: `${BACKUPS_DIR}/.offsite-again`,
  stackLock: `${BACKUPS_DIR}/.stack-lock`,
  writerLock: `${BACKUPS_DIR}/.writer-lock`,
  offsiteLock: `${BACKUPS_DIR}/.offsite-lock`,
  snapshotsListed: `${BACKUPS_DIR}/.snapshots-listed`,
  /** The id of the repository's key every restic started here tries first (resticKey.ts). */
  keyHint: `${BACKUPS_DIR}/.restic-key-hint`,
  /** The hinted key's id once restic proved it opens with the password file: with its inode, size and time. */
  keyProved: `${BACKUPS_DIR}/.restic-key-proved`,
} as const;

export const KEY_FILES = {
  password: "restic-password",
  offsiteRepository: "offsite-repository",
  offsiteEnv: "offsite.env",
} as const;

/** Scratch folders of one operation (`pid` of its edms-ops), each removed by the next session start. */
export const SCRATCH = {
  export: (pid: number) => `${BACKUPS_DIR}/.export-${pid}`,
  import: (pid: number) => `${BACKUPS_DIR}/.import-${pid}`,
  exportGlob: `${BACKUPS_DIR}/.export-*`,
  /** Where a new restic key is proven before it goes into the repository (fastKey.ts). */
  keyCheck: (pid: number) => `${BACKUPS_DIR}/.key-check-${pid}`,
  /** Shell globs of every kind of scratch a killed operation may leave. */
  leftovers: [".export-*", ".import-*", ".partial-*", ".deleting-*", ".key-check-*"].map(
    (glob) => `${BACKUPS_DIR}/${glob}`,
  ),
} as const;

/** A first-release backup's folder (`<id>/` holding manifest.json, db.dump, media.tar). */
export const legacyDir = (id: string) => `${BACKUPS_DIR}/${id}`;
/** Shell glob of every first-release backup folder. */
export const LEGACY_GLOB = `${BACKUPS_DIR}/*/`;
