/**
 * The drill's media half: a sample plus every file changed since the previous passed drill is chosen; the
 * snapshot's media restored into the scratch volume (restic --verify), all of them on a first drill or for
 * an operator's --check, otherwise the chosen files after every blob was read back (restic dump); then the
 * chosen files checksummed, against the live file when it is still the one the backup read.
 */
import { randomInt } from "crypto";
import { z } from "zod";
import { parseJsonLines } from "../../core/json";
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
   * Every file restored (first drill, an operator's --check, nothing left out); otherwise every blob of the
   * snapshot is read back and authenticated by restic without being written, and only `chosen` restored.
   */
  readonly whole: boolean;
}

/** Bytes of odd-named include patterns passed as arguments beyond which the drill restores everything. */
const ODD_PATTERN_BYTES = 64 * 1024;

/**
 * `path` (relative to the media root) as a restic include pattern matching that file only: anchored at
 * the restored folder's root, glob characters escaped.
 */
export function includePattern(path: string): string {
  return `/${path.replace(/[\\*?[]/g, "\\$&")}`;
}

/** Whether `path` is plain bytes (what octalPath leaves alone): it can travel one per line. */
function plainPath(path: string): boolean {
  return /^[A-Za-z0-9._/-]+$/.test(path);
}

export async function planMedia(
  session: OpsSession,
  entry: BackupEntry,
  previous: DrillRecord | null,
  sample: number,
  /** Restore every file whatever is chosen: an operator's --check may read any of them. */
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
  const oddBytes = chosen
    .filter((f) => !plainPath(f.path))
    .reduce((sum, f) => sum + Buffer.byteLength(includePattern(f.path)) + 16, 0);
  const whole = restoreAll || chosen.length === files.length || oddBytes > ODD_PATTERN_BYTES;
  return { files, changed, basis, unnamed: files.length - named.length, chosen, whole };
}

/**
 * The snapshot's media into the scratch volume's root (the release's MEDIA_ROOT), every file written
 * verified by restic (--verify). When the plan leaves files out, `restic dump` first reads every media
 * blob of the snapshot back, authenticated, writing nothing: the proof the whole restore gave, at the cost
 * of a read. Plain names go to restic as an include file on stdin, any other as arguments.
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
        ...(plan.chosen.length ? [`${restore} --include-file /dev/stdin "$@" >/dev/null`] : []),
      ].join("\n");
  const result = await backupToolbox(settings, script, {
    args: [entry.snapshot, ...(plan.whole ? [] : odd.map((f) => includePattern(f.path)))],
    input: plan.whole ? undefined : plain.map((f) => `${includePattern(f.path)}\n`).join(""),
    mounts: [{ volume: scratch.volume, path: "/drill" }],
    allowFailure: true,
  });
  if (result.code !== 0) {
    const step = !plan.whole && result.code === 3 ? "read back" : "restored";
    throw failure(
      `media cannot be ${step} from the repository: ${lastLine(result.stderr)}`,
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

/**
 * A path as `printf %b` turns it back into its bytes: every byte outside a plain set as `\0ooo`, so a name
 * with a tab, a newline or a backslash travels on one line.
 */
export function octalPath(path: string): string {
  return [...Buffer.from(path, "utf8")]
    .map((byte) =>
      /[A-Za-z0-9._/-]/.test(String.fromCharCode(byte))
        ? String.fromCharCode(byte)
        : `\\0${byte.toString(8).padStart(3, "0")}`,
    )
    .join("");
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

/** The checksum exchange of checksumRestored (below): its input, one line per file, and its shell. */
export function checksumInput(chosen: readonly MediaFile[]): string {
  return chosen.map((f, i) => `${i}\t${octalPath(f.path)}\t${f.size}\t${f.mtime}\n`).join("");
}
/**
 * One line per file: position, restored size, restored sha256, live sha256 (`-` where there is none). A name
 * of plain bytes (what octalPath leaves as it is: no blank, quote or backslash) goes into one batch: one `stat`
 * and one `sha256sum` for all of them, as a first drill checksums every file and a process per file cost
 * ~40 ms each here (134 s for 3,070 files against 9.4 s of `sha256sum` over them all). Any other name is
 * checked on its own, as its bytes cannot travel through xargs or sha256sum's output. POSIX sh, awk, xargs -r,
 * stat -c: Debian's and busybox's alike.
 */
export const CHECKSUM_SCRIPT = `T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; : > "$T/p"
while IFS="$(printf '\\t')" read -r i enc size mtime; do
  case "$enc" in
    *[!A-Za-z0-9._/-]*) ;;
    *) printf '%s %s %s %s\\n' "$i" "$size" "$mtime" "$enc" >> "$T/p"; continue ;;
  esac
  p=$(printf '%bx' "$enc"); p=\${p%x}
  r="/drill/$p"; l="/live/$p"; rh=-; lh=-; rs=-
  if [ -f "$r" ]; then rs=$(stat -c %s "$r"); rh=$(sha256sum < "$r" | cut -d' ' -f1); fi
  if [ -f "$l" ] && [ ! -L "$l" ] && [ "$(stat -c '%s %Y' "$l")" = "$size $mtime" ]; then lh=$(sha256sum < "$l" | cut -d' ' -f1); fi
  printf '%s\\t%s\\t%s\\t%s\\n' "$i" "$rs" "$rh" "$lh"
done
[ -s "$T/p" ] || exit 0
D="/drill/"; L="/live/"
paths() { awk -v at="$1" '{ print at $4 }' "$T/p"; }
paths "$D" | xargs -r stat -L -c '%s %n' > "$T/rs" 2>/dev/null || true
paths "$D" | xargs -r sha256sum > "$T/rh" 2>/dev/null || true
# The live file is the reference only while it is the regular file the backup read (same size and mtime):
# never a symlink (a compromised web can plant one), which stat without -L shows as one.
paths "$L" | xargs -r stat -c '%A %s %Y %n' 2>/dev/null \\
  | awk -v at="$L" 'NR == FNR { want[at $4] = $2 " " $3; next } substr($1, 1, 1) == "-" && want[$4] == $2 " " $3 { print $4 }' "$T/p" - \\
  | xargs -r sha256sum > "$T/lh" 2>/dev/null || true
{ sed 's/^/P /' "$T/p"; sed 's/^/S /' "$T/rs"; sed 's/^/H /' "$T/rh"; sed 's/^/L /' "$T/lh"; } | awk -v d="$D" -v l="$L" '
  $1 == "P" { n++; rel[n] = $5; pos[n] = $2; next }
  $1 == "S" { size[substr($3, length(d) + 1)] = $2; next }
  $1 == "H" { if (index($3, d) == 1) sum[substr($3, length(d) + 1)] = $2; next }
  $1 == "L" { live[substr($3, length(l) + 1)] = $2; next }
  END {
    for (k = 1; k <= n; k++) {
      f = rel[k]
      if (f in sum) { rs = size[f]; rh = sum[f] } else { rs = "-"; rh = "-" }
      printf "%s\\t%s\\t%s\\t%s\\n", pos[k], rs, rh, (f in live) ? live[f] : "-"
    }
  }'`;

/**
 * Restored bytes against the live file when the live file is still the one the backup read (same size
 * and mtime): a reference restic did not produce. Otherwise size against the snapshot's listing. In, one
 * line per file: its position, its path (octalPath), size, mtime; out: position, restored size, restored
 * sha256, live sha256 (`-` where there is none). `x` keeps a name's trailing newline through `$(…)`. A
 * symlink in live media (a compromised web can plant one) is no reference: it is never followed.
 */
async function checksumRestored(
  settings: Settings,
  scratch: Scratch,
  chosen: readonly MediaFile[],
): Promise<string> {
  const hasLive = await volumeExists(settings.names.mediaVolume);
  const result = await toolbox(
    settings,
    [
      { volume: scratch.volume, path: "/drill", readOnly: true },
      ...(hasLive ? [{ volume: settings.names.mediaVolume, path: "/live", readOnly: true }] : []),
    ],
    CHECKSUM_SCRIPT,
    {
      input: checksumInput(chosen),
    },
  );
  return result.stdout;
}

/** The checksum lines against what was chosen: problems, and the checksums of the files that passed. */
export function compareChecksums(
  chosen: readonly MediaFile[],
  output: string,
): { problems: string[]; checksums: Record<string, string>; againstLive: number } {
  const expected = new Map(chosen.map((f, i) => [String(i), f]));
  const problems: string[] = [];
  const checksums: Record<string, string> = {};
  let againstLive = 0;
  for (const line of output.split("\n").filter(Boolean)) {
    const [position, size, restored, live] = line.split("\t");
    const file = expected.get(position);
    if (!file) {
      continue;
    }
    expected.delete(position);
    const path = file.path;
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
  problems.push(...[...expected.values()].map((f) => `${f.path}: not checked`));
  return { problems, checksums, againstLive };
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
  // Only a whole restore can be counted; a partial one rests on restic's dump of every file (a size that
  // disagrees with the tree fails it) and on the snapshot's count below.
  const counted = [
    ...mediaCountProblems("the snapshot", recorded, listingCount(files)),
    ...(plan.whole
      ? mediaCountProblems(
          "the restored copy",
          recorded,
          await restoredCount(session.settings, scratch),
        )
      : []),
  ];
  if (counted.length) {
    throw failure(counted.join("; "), DAMAGED);
  }
  const output = await checksumRestored(session.settings, scratch, chosen);
  const { problems, checksums, againstLive } = compareChecksums(chosen, output);
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
