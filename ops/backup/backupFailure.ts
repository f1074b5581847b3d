/**
 * What a failed backup says: which files restic could not read, whether the backups volume is full, and what
 * to do; in every case that no snapshot was written and the earlier backups are untouched.
 */
import { failure, OpsError } from "../core/errors";
import type { OpsSession } from "../engine/session";
import { BACKUPS_DIR } from "../store/layout";
import { MEDIA_DIR, NO_SPACE } from "../store/restic";

/** An item restic could not read because it no longer exists. */
export const VANISHED = /vanished while the backup ran|no such file or directory/i;

/** Exit code 3: which files (backupFailure adds what to do about them). */
const UNREADABLE = /^restic could not read \d+ item/;

export function unreadableFailure(stack: string, items: readonly string[]): OpsError {
  const shown = items.slice(0, 10);
  const more = items.length > shown.length ? `\n  … and ${items.length - shown.length} more` : "";
  return failure(
    `restic could not read ${items.length} item(s), so the snapshot would miss them; it was forgotten:\n  - ${shown.join("\n  - ")}${more}`,
    `Make them readable or remove them, then retry \`edms-ops backup --stack ${stack}\`.`,
  );
}

export async function backupFailure(
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
