/** What a backup is asked for (its reason, the release it precedes), checked, and the id it gets. */
import { refuse } from "../core/errors";
import { REASON_PATTERN, TAG_VALUE } from "../store/manifest";

export interface BackupRequest {
  readonly reason: string;
  readonly targetVersion?: string;
  /**
   * The off-host copy after the stack lock is released: `wait` for it (default), or start it in the
   * `background` (the pre-deploy hook: a deploy waits only for the local backup). A backup taken inside
   * another operation (a restore's undo) always starts it in the background.
   */
  readonly offsiteCopy?: "wait" | "background";
  /**
   * Back up a database with no Django schema all the same: the undo of a restore onto an emptied database
   * whose media volume still holds files, which the restore would replace or delete.
   */
  readonly emptyDatabase?: boolean;
}

/** `<host time>-<reason>`, with `-2`, `-3`… when a backup of that second and reason exists. */
export function newId(hostTime: string, reason: string, taken: readonly string[]): string {
  const stamp = hostTime.replace(/\.\d+Z$/, "Z").replace(/:/g, "-");
  let id = `${stamp}-${reason}`;
  for (let n = 2; taken.includes(id); n += 1) {
    id = `${stamp}-${reason}-${n}`;
  }
  return id;
}

/** Refuses a request whose values would not make a valid backup id or restic tag. */
export function checkBackupRequest(request: BackupRequest): void {
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
