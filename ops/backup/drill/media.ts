/**
 * The drill's media half: a sample plus every file changed since the previous passed drill is chosen; the
 * snapshot's media restored into the scratch volume (restic --verify): all of them on a first drill, for
 * an operator's --check or the pre-deploy rehearsal, otherwise the chosen files after the data of every
 * file was read back (restic dump); then the chosen files checksummed, against the live file when it is
 * still the one the backup read.
 */
import { randomInt } from "crypto";
import { z } from "zod";
import { parseJsonLines } from "../../core/json";
import { Settings } from "../../../model/settings";
import { failure } from "../../core/errors";
import { FREE_SCRATCH_ROOM, hostFailure, hostFaultLine } from "../../core/hostFault";
import { lastLine } from "../../core/log";
import { OpsSession } from "../../engine/session";
import { backupToolbox, toolbox } from "../../engine/toolbox";
import { DrillRecord } from "../../store/records";
import { BackupEntry, MEDIA_DIR } from "../../store/restic";
import { DAMAGED } from "./checks";
import { checksumRestored, compareChecksums, plainPath } from "./checksums";
import { Scratch } from "./scratch";
import {
  listingCount,
  MEDIA_COUNT_SCRIPT,
  MediaCount,
  mediaCountProblems,
  MediaFile,
  parseMediaCount,
  snapshotMedia,
} from "../mediaCount";

export { parseMediaListing } from "../mediaCount";
export type { MediaFile } from "../mediaCount";

/** What the drill record keeps of the media check. */
export interface MediaTally {
  files: number;
  checksums: Record<string, string>;
  changed: number | null;
}

/**
 * What a drill's media half restores and checksums, decided from the snapshot's listing and restic's diff
 * against the previous passed drill before anything is restored.
 */
export interface MediaPlan {
  readonly files: readonly MediaFile[];
  /** Files added or changed since the previous passed drill; null: no usable previous drill. */
  readonly changed: readonly string[] | null;
  readonly basis: string;
  /** Files named in bytes that are not UTF-8: restic's JSON cannot name them; restic reads them back. */
  readonly unnamed: number;
  /** What is checksummed: every changed file plus a sample. */
  readonly chosen: readonly MediaFile[];
  /**
   * Every file restored (first drill, an operator's --check, the rehearsal, nothing left out, too many
   * chosen); otherwise the data of every file is read back and authenticated by restic without being
   * written, and only `chosen` restored.
   */
  readonly whole: boolean;
}

/** Bytes of odd-named include patterns passed as arguments beyond which the drill restores everything. */
const ODD_PATTERN_BYTES = 64 * 1024;

/**
 * restic matches every node of the tree against every include pattern (restore walks it three times with
 * --verify): beyond this many pattern × file pairs a whole restore costs less than the matching.
 */
const PATTERN_MATCH_BUDGET = 10_000_000;

/**
 * `path` (relative to the media root) as a restic include pattern matching that file only: anchored at
 * the restored folder's root, glob characters escaped.
 */
export function includePattern(path: string): string {
  return `/${path.replace(/[\\*?[]/g, "\\$&")}`;
}

export async function planMedia(
  session: OpsSession,
  entry: BackupEntry,
  previous: DrillRecord | null,
  sample: number,
  /**
   * Restore every file whatever is chosen: an operator's --check or the new release's migrate (the
   * rehearsal) may read any of them.
   */
  restoreAll: boolean,
): Promise<MediaPlan> {
  const [files, { changed, basis }] = await Promise.all([
    snapshotMedia(session, entry.snapshot),
    changedSincePrevious(session, entry, previous),
  ]);
  // restic's JSON carries a name that is not UTF-8 with U+FFFD in place of its bytes: such a file cannot
  // be named here, and restic's own read-back (--verify, or the dump) proves it.
  const named = files.filter((f) => !f.path.includes("\uFFFD"));
  const chosen = chooseMedia(named, changed, sample);
  const whole = restoreAll || restoresWhole(files, changed, chosen);
  return { files, changed, basis, unnamed: files.length - named.length, chosen, whole };
}

/**
 * Whether restoring `chosen` means restoring every file anyway: no previous drill (every file chosen), none
 * left out, more pattern × file pairs than restic matches quickly, or odd names beyond what arguments hold.
 */
export function restoresWhole(
  files: readonly MediaFile[],
  changed: readonly string[] | null,
  chosen: readonly MediaFile[],
): boolean {
  const oddBytes = chosen
    .filter((f) => !plainPath(f.path))
    .reduce((sum, f) => sum + Buffer.byteLength(includePattern(f.path)) + 16, 0);
  return (
    changed === null ||
    chosen.length === files.length ||
    chosen.length * files.length > PATTERN_MATCH_BUDGET ||
    oddBytes > ODD_PATTERN_BYTES
  );
}

const RestoreSummarySchema = z.object({
  message_type: z.literal("summary"),
  total_files: z.number(),
});

/**
 * The snapshot's media into the scratch volume's root (the release's MEDIA_ROOT), every file written
 * verified by restic (--verify). When the plan leaves files out, `restic dump` first reads the data of
 * every media file back, each blob authenticated, writing nothing (the trees were walked by the listing
 * the plan read); then only the chosen files are restored, and restic must report exactly that many
 * selected. Plain names go to restic as an include file on stdin, any other as arguments.
 */
export async function restoreMedia(
  settings: Settings,
  entry: BackupEntry,
  scratch: Scratch,
  plan: MediaPlan,
) {
  const restore = `lrestic --no-lock restore "$s:${MEDIA_DIR}" --target /drill --verify`;
  const plain = plan.chosen.filter((f) => plainPath(f.path));
  const odd = plan.chosen.filter((f) => !plainPath(f.path));
  const script = plan.whole
    ? `s=$1; ${restore} >/dev/null`
    : [
        `s=$1; shift; for p; do set -- "$@" --include "$p"; shift; done`,
        `lrestic --no-lock dump -a tar "$s" ${MEDIA_DIR} >/dev/null || exit 3`,
        ...(plan.chosen.length ? [`${restore} --json --include-file /dev/stdin "$@"`] : []),
      ].join("\n");
  const result = await backupToolbox(settings, script, {
    args: [entry.snapshot, ...(plan.whole ? [] : odd.map((f) => includePattern(f.path)))],
    input: plan.whole ? undefined : plain.map((f) => `${includePattern(f.path)}\n`).join(""),
    mounts: [{ volume: scratch.volume, path: "/drill" }],
    allowFailure: true,
  });
  if (result.code !== 0) {
    const step = !plan.whole && result.code === 3 ? "read back" : "restored";
    const fault = hostFaultLine(result.stderr);
    if (fault) {
      throw hostFailure(
        `The drill's media restore into ${scratch.volume} stopped on the host, not on the backup: ${fault}`,
        FREE_SCRATCH_ROOM,
      );
    }
    throw failure(
      `media cannot be ${step} from the repository: ${lastLine(result.stderr)}`,
      DAMAGED,
    );
  }
  if (!plan.whole && plan.chosen.length) {
    const [summary] = parseJsonLines(result.stdout, RestoreSummarySchema);
    if (summary?.total_files !== plan.chosen.length) {
      throw failure(
        `restic restored ${summary?.total_files ?? "an unknown number of"} files where the drill asked for ${plan.chosen.length}`,
        DAMAGED,
      );
    }
  }
}

/** Files and bytes of the media restored into the scratch volume. */
async function restoredCount(settings: Settings, scratch: Scratch): Promise<MediaCount> {
  const result = await toolbox(
    settings,
    [{ volume: scratch.volume, path: "/drill", readOnly: true }],
    `set -- /drill\n${MEDIA_COUNT_SCRIPT}`,
  );
  return parseMediaCount(result.stdout);
}

const DiffChangeSchema = z.object({
  message_type: z.literal("change"),
  path: z.string(),
  modifier: z.string(),
});

/**
 * Paths (relative to the media root) that `restic diff --json` reports added or modified: its JSON, as a
 * name may hold a newline or a tab that the text output cannot carry.
 */
export function parseDiff(stdout: string): string[] {
  return parseJsonLines(stdout, DiffChangeSchema)
    .filter((c) => /[+M]/.test(c.modifier))
    .map((c) => c.path)
    .filter((path) => path.startsWith(`${MEDIA_DIR}/`) && !path.endsWith("/"))
    .map((path) => path.slice(MEDIA_DIR.length + 1));
}

/** Every changed file plus `sample` others chosen at random: what a drill checksums. */
export function chooseMedia(
  files: readonly MediaFile[],
  changed: readonly string[] | null,
  sample: number,
  pick: (n: number) => number = randomInt,
): MediaFile[] {
  if (changed === null) {
    return [...files];
  }
  const wanted = new Set(changed);
  const chosen = files.filter((f) => wanted.has(f.path));
  const rest = files.filter((f) => !wanted.has(f.path));
  for (let i = 0; i < sample && rest.length; i += 1) {
    chosen.push(...rest.splice(pick(rest.length), 1));
  }
  return chosen;
}

/**
 * Changed since the previous drill: restic's own diff of the two snapshots. Without a previous drill, or
 * when its snapshot is gone, every file is new to the drills and is checked (null).
 */
async function changedSincePrevious(
  session: OpsSession,
  entry: BackupEntry,
  previous: DrillRecord | null,
): Promise<{ changed: string[] | null; basis: string }> {
  if (!previous) {
    return { changed: null, basis: "no previous drill: every file checked" };
  }
  if (previous.snapshot === entry.snapshot) {
    return { changed: [], basis: `same snapshot as drill ${previous.id}` };
  }
  const diff = await session.exec(
    `lrestic diff --json "$1" "$2"`,
    [previous.snapshot, entry.snapshot],
    {
      allowFailure: true,
    },
  );
  if (diff.code !== 0) {
    return { changed: null, basis: `snapshot of drill ${previous.id} is gone: every file checked` };
  }
  const changed = parseDiff(diff.stdout);
  return { changed, basis: `${changed.length} changed since drill ${previous.id}` };
}

export async function checkMedia(
  session: OpsSession,
  scratch: Scratch,
  plan: MediaPlan,
  media: MediaTally,
  /** What the manifest counted at backup time (absent in older backups). */
  recorded?: MediaCount,
): Promise<string> {
  const { files, changed, chosen } = plan;
  media.files = files.length;
  media.changed = changed === null ? null : changed.length;
  // What the snapshot lists against what the manifest counted, before any container starts.
  const listed = mediaCountProblems("the snapshot", recorded, listingCount(files));
  if (listed.length) {
    throw failure(listed.join("; "), DAMAGED);
  }
  // Only a whole restore can be counted; a partial one rests on restic's dump of every file (a size that
  // disagrees with the tree fails it) and on the snapshot's count above. The count runs beside the
  // checksums (two containers at once), and a count that falls short is what the check says, whatever
  // became of them.
  const [restored, output] = await Promise.allSettled([
    plan.whole ? restoredCount(session.settings, scratch) : undefined,
    checksumRestored(session.settings, scratch, chosen),
  ]);
  if (restored.status === "rejected") {
    throw restored.reason;
  }
  const short = restored.value
    ? mediaCountProblems("the restored copy", recorded, restored.value)
    : [];
  if (short.length) {
    throw failure(short.join("; "), DAMAGED);
  }
  if (output.status === "rejected") {
    throw output.reason;
  }
  const { problems, checksums, againstLive } = compareChecksums(chosen, output.value);
  Object.assign(media.checksums, checksums);
  if (problems.length) {
    throw failure(problems.slice(0, 5).join("; "), DAMAGED);
  }
  const count = recorded
    ? `, ${recorded.files} files and ${recorded.bytes} bytes as the manifest counted`
    : "";
  const notUtf8 = plan.unnamed
    ? `, ${plan.unnamed} named in bytes that are not UTF-8 verified by restic only`
    : "";
  return `${chosen.length} of ${files.length} files (${plan.basis}), ${againstLive} equal to the live file${count}${notUtf8}`;
}
