/**
 * The media file count and bytes a backup's manifest records, and their checks in verify, drill and restore.
 * The count is taken in the backup's own session just before restic reads the volume, with the same
 * exclusion (the health probe's files at the top of media only, as restic's anchored MEDIA_EXCLUDE). The
 * web keeps serving meanwhile, so uploads in between can only add to what the snapshot holds: a snapshot or
 * a restore with *fewer* files or bytes than the manifest lost something, and that is what every check
 * reports, with both numbers.
 */
import { z } from "zod";
import { parseJson } from "../core/json";
import { failure } from "../core/errors";
import { MediaCount } from "../store/manifest";
import { MEDIA_DIR, MEDIA_PROBE } from "../store/restic";
import { Settings } from "../../model/settings";
import { volumeExists } from "../engine/docker";
import { mediaMount, toolbox } from "../engine/toolbox";
import type { OpsSession } from "../engine/session";

export type { MediaCount } from "../store/manifest";

/**
 * Shell printing `<files> <bytes>` of the regular files under `dir` ($1), excluded names pruned as restic
 * prunes them. POSIX find/stat/awk (busybox in restic's image, GNU elsewhere); `%.0f` as mawk's %d is 32-bit.
 */
export const MEDIA_COUNT_SCRIPT = `find "$1" -path "$1/${MEDIA_PROBE}" -prune -o -type f -exec stat -c %s {} + | awk '{ n += 1; s += $1 } END { printf "%d %.0f\\n", n, s }'`;

export function parseMediaCount(stdout: string): MediaCount {
  const match = /^(\d+) (\d+)$/.exec(stdout.trim().split("\n").pop() ?? "");
  if (!match) {
    throw failure(
      `counting the media files printed \`${stdout.trim().slice(0, 80)}\`, not "<files> <bytes>".`,
      "Retry; if it repeats, check that the backup image has find, stat and awk.",
    );
  }
  return { files: Number(match[1]), bytes: Number(match[2]) };
}

export interface MediaFile {
  readonly path: string;
  readonly size: number;
  readonly mtime: number;
  /**
   * Its inode's change time at backup (seconds), which no user can set as they can set mtime: absent in a
   * listing without it.
   */
  readonly ctime?: number;
}

/** A file node of `restic ls --json`. */
const LsNodeSchema = z.looseObject({
  path: z.string(),
  size: z.number().optional(),
  mtime: z.string(),
  ctime: z.string().optional(),
});

/** Files of the snapshot's media (path relative to the media root, size, mtime and ctime in seconds). */
export function parseMediaListing(stdout: string): MediaFile[] {
  const files: MediaFile[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.includes('"type":"file"')) {
      continue;
    }
    const node = parseJson(line, LsNodeSchema, "a line of restic ls");
    if (node.path.startsWith(`${MEDIA_DIR}/`)) {
      const path = node.path.slice(MEDIA_DIR.length + 1);
      const ctime = node.ctime ? Math.floor(Date.parse(node.ctime) / 1000) : NaN;
      files.push({
        path,
        size: node.size ?? 0,
        mtime: Math.floor(Date.parse(node.mtime) / 1000),
        ...(Number.isFinite(ctime) ? { ctime } : {}),
      });
    }
  }
  return files;
}

/** Each session's listings by snapshot: a snapshot never changes, so one `restic ls` serves every step. */
const listings = new WeakMap<OpsSession, Map<string, Promise<MediaFile[]>>>();

/**
 * The media files of `snapshot`, as restic lists them: asked once per session (the restore's room check,
 * its read-back and its integrity check, the drill's checks each used to start their own restic). A failed
 * listing is not kept, so the next step asks again.
 */
export function snapshotMedia(session: OpsSession, snapshot: string): Promise<MediaFile[]> {
  let bySnapshot = listings.get(session);
  if (!bySnapshot) {
    bySnapshot = new Map();
    listings.set(session, bySnapshot);
  }
  const known = bySnapshot.get(snapshot);
  if (known) {
    return known;
  }
  const listed = session
    .exec(`lrestic ls --recursive --json "$1" ${MEDIA_DIR}`, [snapshot])
    .then((r) => parseMediaListing(r.stdout));
  const kept = bySnapshot;
  kept.set(snapshot, listed);
  listed.catch(() => kept.delete(snapshot));
  return listed;
}

/** Starts the snapshot's listing for a later `snapshotMedia` (a failure is reported where it is awaited). */
export function listMediaAhead(
  session: OpsSession,
  entry: { readonly paths: readonly string[]; readonly snapshot: string },
): void {
  if (entry.paths.includes(MEDIA_DIR)) {
    snapshotMedia(session, entry.snapshot).catch(() => undefined);
  }
}

export function listingCount(files: readonly MediaFile[]): MediaCount {
  return { files: files.length, bytes: files.reduce((sum, f) => sum + f.size, 0) };
}

/**
 * `what` (the snapshot, the restored media) against the manifest's count: a problem when it has fewer files
 * or bytes. None for a manifest without a count (backups before it was recorded).
 */
export function mediaCountProblems(
  what: string,
  recorded: MediaCount | undefined,
  actual: MediaCount,
): string[] {
  if (!recorded) {
    return [];
  }
  const problems: string[] = [];
  if (actual.files < recorded.files) {
    problems.push(
      `media: ${what} has ${actual.files} files, the manifest recorded ${recorded.files} at backup time (${recorded.files - actual.files} missing)`,
    );
  }
  if (actual.bytes < recorded.bytes) {
    problems.push(
      `media: ${what} has ${actual.bytes} bytes, the manifest recorded ${recorded.bytes} at backup time`,
    );
  }
  return problems;
}

/** The stack's media volume holds at least one file (the health probe's files at its top aside). */
export async function hasMediaFiles(settings: Settings): Promise<boolean> {
  if (!(await volumeExists(settings.names.mediaVolume))) {
    return false;
  }
  const found = await toolbox(
    settings,
    [mediaMount(settings)],
    `find /media -path '/media/${MEDIA_PROBE}' -prune -o -type f -print | head -n 1`,
  );
  return found.stdout.trim() !== "";
}

/**
 * Refuses a backup while the top of media holds a folder, a link or anything but a regular file under the
 * health probe's name (`.health-*`): restic's exclusion of the probe's files would leave it out whole, and the
 * count with it, so a folder of documents moved there (a symlink where it was, for the app to go on) would be
 * missing from every backup while they all checked. The app's probe only ever writes regular files there.
 */
export async function requireProbeFilesOnly(session: OpsSession): Promise<void> {
  const found = await session.exec(
    `find "$1" -mindepth 1 -maxdepth 1 -name '${MEDIA_PROBE}' ! -type f -print | head -n 3`,
    [MEDIA_DIR],
  );
  const names = found.stdout
    .split("\n")
    .filter(Boolean)
    .map((path) => JSON.stringify(path.slice(MEDIA_DIR.length + 1)));
  if (names.length) {
    throw failure(
      `the media's top holds ${names.join(", ")}: not a regular file, under the name the health probe's files take (${MEDIA_PROBE}), which backups leave out whole. Nothing was backed up.`,
      `Look at what it holds and how it got there (the app's probe writes only regular files there), move its contents to a folder of another name, remove it, then back up again: \`edms-ops backup --stack ${session.settings.stack}\`.`,
    );
  }
}
