/**
 * The media half of a restore, after the database swap: the media volume brought to the snapshot in place
 * (restic restore writes only what differs and deletes what the snapshot lacks), then counted against the
 * snapshot's listing and the manifest. Bucket media: the mirror is restored so, then the bucket's prefix is
 * brought to it (bucket.ts).
 */
import { progress } from "../core/log";
import type { OpsSession } from "../engine/session";
import { Manifest } from "../store/manifest";
import { BackupEntry, MEDIA_DIR, MEDIA_RESTORE_EXCLUDE } from "../store/restic";
import { countMedia } from "./create";
import { pushBucket } from "./bucket";
import { listingCount, mediaCountProblems, snapshotMedia } from "./mediaCount";

export async function restoreMedia(session: OpsSession, entry: BackupEntry): Promise<void> {
  if (!session.hasMedia || !entry.paths.includes(MEDIA_DIR)) {
    progress("media: not in this backup or no media volume; left as it is");
    return;
  }
  // `always` compares content (only differing parts are written); `if-changed` trusts size and mtime.
  progress("restoring media (only what differs)");
  await session.exec(
    `lrestic restore "$1:${MEDIA_DIR}" --target ${MEDIA_DIR} --overwrite always --delete --verify --exclude '${MEDIA_RESTORE_EXCLUDE}' >/dev/null && sync`,
    [entry.snapshot],
  );
  if (session.settings.media) {
    await pushBucket(session.settings);
  }
}

/**
 * The restored media against the snapshot's listing (files exactly: restic restores what it lists) and
 * against what the manifest counted at backup time (a snapshot that lost files shows here).
 */
export async function mediaProblems(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
): Promise<string[]> {
  const inBackup = listingCount(await snapshotMedia(session, entry.snapshot));
  const restored = await countMedia(session, MEDIA_DIR);
  return [
    ...(restored.files === inBackup.files
      ? []
      : [`media: ${restored.files} files restored, the backup has ${inBackup.files}`]),
    ...mediaCountProblems("the restored media", manifest.media, restored),
  ];
}
