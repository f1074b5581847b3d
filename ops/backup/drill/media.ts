/**
 * The drill's media half: the snapshot's media restored into the scratch volume (restic --verify), then a
 * sample plus every file changed since the previous drill checksummed, against the live file when it is
 * still the one the backup read.
 */
import { randomInt } from "crypto";
import { Settings } from "../../../model/settings";
import { failure } from "../../core/errors";
import { lastLine } from "../../core/log";
import { volumeExists } from "../../engine/docker";
import { OpsSession } from "../../engine/session";
import { backupToolbox, toolbox } from "../../engine/toolbox";
import { DrillRecord } from "../../store/records";
import { BackupEntry, MEDIA_DIR } from "../../store/restic";
import { DAMAGED } from "./checks";
import { Scratch } from "./scratch";
import {
  listingCount,
  MEDIA_COUNT_SCRIPT,
  MediaCount,
  mediaCountProblems,
  MediaFile,
  parseMediaCount,
  parseMediaListing,
} from "../mediaCount";

export { parseMediaListing } from "../mediaCount";
export type { MediaFile } from "../mediaCount";

/** What the drill record keeps of the media check. */
export interface MediaTally {
  files: number;
  checksums: Record<string, string>;
  changed: number | null;
}

/** restic restore of the snapshot's media into the scratch volume, every blob verified as written. */
export async function restoreMedia(settings: Settings, entry: BackupEntry, scratch: Scratch) {
  // The snapshot's media folder into the volume's root, which the release sees as its MEDIA_ROOT.
  const result = await backupToolbox(
    settings,
    `lrestic --no-lock restore "$1:${MEDIA_DIR}" --target /drill --verify >/dev/null`,
    {
      args: [entry.snapshot],
      mounts: [{ volume: scratch.volume, path: "/drill" }],
      allowFailure: true,
    },
  );
  if (result.code !== 0) {
    throw failure(
      `media cannot be restored from the repository: ${lastLine(result.stderr)}`,
      DAMAGED,
    );
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

/** Paths (relative to the media root) that `restic diff` reports added or modified. */
export function parseDiff(stdout: string): string[] {
  const changed: string[] = [];
  for (const line of stdout.split("\n")) {
    const match = /^([+M])\s+(\S.*)$/.exec(line);
    if (match && match[2].startsWith(`${MEDIA_DIR}/`) && !match[2].endsWith("/")) {
      changed.push(match[2].slice(MEDIA_DIR.length + 1));
    }
  }
  return changed;
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
  const diff = await session.exec(`lrestic diff "$1" "$2"`, [previous.snapshot, entry.snapshot], {
    allowFailure: true,
  });
  if (diff.code !== 0) {
    return { changed: null, basis: `snapshot of drill ${previous.id} is gone: every file checked` };
  }
  const changed = parseDiff(diff.stdout);
  return { changed, basis: `${changed.length} changed since drill ${previous.id}` };
}

/**
 * Restored bytes against the live file when the live file is still the one the backup read (same size
 * and mtime): a reference restic did not produce. Otherwise size against the snapshot's listing. One line
 * per file: path, restored size, restored sha256, live sha256 (`-` where there is none).
 */
async function checksumRestored(
  settings: Settings,
  scratch: Scratch,
  chosen: readonly MediaFile[],
): Promise<string> {
  const hasLive = await volumeExists(settings.names.mediaVolume);
  const script = `while IFS="$(printf '\\t')" read -r p size mtime; do
  r="/drill/$p"; l="/live/$p"; rh=-; lh=-; rs=-
  if [ -f "$r" ]; then rs=$(stat -c %s "$r"); rh=$(sha256sum < "$r" | cut -d' ' -f1); fi
  if [ -f "$l" ] && [ "$(stat -c '%s %Y' "$l")" = "$size $mtime" ]; then lh=$(sha256sum < "$l" | cut -d' ' -f1); fi
  printf '%s\\t%s\\t%s\\t%s\\n' "$p" "$rs" "$rh" "$lh"
done`;
  const result = await toolbox(
    settings,
    [
      { volume: scratch.volume, path: "/drill", readOnly: true },
      ...(hasLive ? [{ volume: settings.names.mediaVolume, path: "/live", readOnly: true }] : []),
    ],
    script,
    { input: chosen.map((f) => `${f.path}\t${f.size}\t${f.mtime}\n`).join("") },
  );
  return result.stdout;
}

/** The checksum lines against what was chosen: problems, and the checksums of the files that passed. */
export function compareChecksums(
  chosen: readonly MediaFile[],
  output: string,
): { problems: string[]; checksums: Record<string, string>; againstLive: number } {
  const expected = new Map(chosen.map((f) => [f.path, f]));
  const problems: string[] = [];
  const checksums: Record<string, string> = {};
  let againstLive = 0;
  for (const line of output.split("\n").filter(Boolean)) {
    const [path, size, restored, live] = line.split("\t");
    const file = expected.get(path);
    if (!file) {
      continue;
    }
    expected.delete(path);
    if (restored === "-") {
      problems.push(`${path}: not restored`);
    } else if (Number(size) !== file.size) {
      problems.push(`${path}: ${size} bytes restored, the snapshot has ${file.size}`);
    } else if (live !== "-" && live !== restored) {
      problems.push(`${path}: sha256 differs from the live file the backup read`);
    } else {
      checksums[path] = restored;
      againstLive += live === "-" ? 0 : 1;
    }
  }
  problems.push(...[...expected.keys()].map((p) => `${p}: not checked`));
  return { problems, checksums, againstLive };
}

export async function checkMedia(
  session: OpsSession,
  entry: BackupEntry,
  scratch: Scratch,
  previous: DrillRecord | null,
  sample: number,
  media: MediaTally,
  /** What the manifest counted at backup time (absent in older backups). */
  recorded?: MediaCount,
): Promise<string> {
  const listing = await session.exec(`lrestic ls --recursive --json "$1" ${MEDIA_DIR}`, [
    entry.snapshot,
  ]);
  const files = parseMediaListing(listing.stdout);
  media.files = files.length;
  const counted = [
    ...mediaCountProblems("the snapshot", recorded, listingCount(files)),
    ...mediaCountProblems(
      "the restored copy",
      recorded,
      await restoredCount(session.settings, scratch),
    ),
  ];
  if (counted.length) {
    throw failure(counted.join("; "), DAMAGED);
  }
  const { changed, basis } = await changedSincePrevious(session, entry, previous);
  media.changed = changed === null ? null : changed.length;
  const chosen = chooseMedia(files, changed, sample);
  const output = await checksumRestored(session.settings, scratch, chosen);
  const { problems, checksums, againstLive } = compareChecksums(chosen, output);
  Object.assign(media.checksums, checksums);
  if (problems.length) {
    throw failure(problems.slice(0, 5).join("; "), DAMAGED);
  }
  const count = recorded
    ? `, ${recorded.files} files and ${recorded.bytes} bytes as the manifest counted`
    : "";
  return `${chosen.length} of ${files.length} files (${basis}), ${againstLive} equal to the live file${count}`;
}
