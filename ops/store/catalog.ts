/** Questions answered from a listing of backups, without opening a snapshot. */
import { REASONS } from "../../model/hooks";
import { BackupEntry } from "./restic";

export interface PreDeployQuery {
  readonly stack: string;
  /** The release the backup was taken before deploying (its `target`). */
  readonly release: string;
  /** Only backups taken after this time (e.g. the previous deployment: this deploy's own backup). */
  readonly after?: string;
}

/**
 * The pre-deploy backup for release X: the newest backup the deploy hook took before deploying X on this
 * stack. A listing may hold other stacks' backups (an imported repository), and a release deployed twice
 * has one per deploy, so the newest wins.
 */
export function preDeployBackupFor(
  listing: readonly BackupEntry[],
  query: PreDeployQuery,
): BackupEntry | undefined {
  const after = query.after ? Date.parse(query.after) : -Infinity;
  return listing
    .filter(
      (b) =>
        b.reason === REASONS.preDeploy &&
        b.target === query.release &&
        b.stack === query.stack &&
        Date.parse(b.time) > after,
    )
    .reduce<BackupEntry | undefined>(
      (newest, b) => (!newest || newer(b, newest) ? b : newest),
      undefined,
    );
}

/** The listing's own order (restic.ts parseSnapshots): by time, then by id for backups of the same second. */
function newer(a: BackupEntry, b: BackupEntry): boolean {
  return (Date.parse(a.time) - Date.parse(b.time) || a.id.localeCompare(b.id)) > 0;
}
