/**
 * The drill's media checksums: each chosen file restored in the scratch volume against the live file when
 * the live file is still the one the backup read, else its size against the snapshot's listing.
 */
import { Settings } from "../../../model/settings";
import { volumeExists } from "../../engine/docker";
import { SHA256_TOOL, toolbox } from "../../engine/toolbox";
import type { MediaFile } from "../mediaCount";
import { Scratch } from "./scratch";

/**
 * The bytes a name may hold and still travel as it is: one per line, through xargs and sha256sum's output,
 * in a restic include file (no blank, quote, backslash, `$` or `#`). One set for the TypeScript and the shell.
 */
const PLAIN = "A-Za-z0-9._/-";
const PLAIN_BYTE = new RegExp(`[${PLAIN}]`);
const PLAIN_NAME = new RegExp(`^[${PLAIN}]+$`);

/** Whether every byte of `path` is plain (octalPath leaves it as it is). */
export function plainPath(path: string): boolean {
  return PLAIN_NAME.test(path);
}

/**
 * A path as `printf %b` turns it back into its bytes: every byte outside the plain set as `\0ooo`, so a name
 * with a tab, a newline or a backslash travels on one line.
 */
export function octalPath(path: string): string {
  return [...Buffer.from(path, "utf8")]
    .map((byte) =>
      PLAIN_BYTE.test(String.fromCharCode(byte))
        ? String.fromCharCode(byte)
        : `\\0${byte.toString(8).padStart(3, "0")}`,
    )
    .join("");
}

/** The checksum exchange of checksumRestored (below): its input, one line per file, and its shell. */
export function checksumInput(chosen: readonly MediaFile[]): string {
  return chosen
    .map((f, i) => `${i}\t${octalPath(f.path)}\t${f.size}\t${f.mtime}\t${f.ctime ?? "-"}\n`)
    .join("");
}
/**
 * One line per file: position, restored size, restored sha256, live sha256 (`-` where there is none). A name
 * of plain bytes (what octalPath leaves as it is: no blank, quote or backslash) goes into one batch: one `stat`
 * and one `sha256sum` for all of them, as a first drill checksums every file and a process per file cost
 * ~40 ms each here (134 s for 3,070 files against 9.4 s of `sha256sum` over them all). awk sorts the lines
 * into the two sets: a shell `read` per line cost 1.3 ms each (4 s of a 9 s first drill's checksums). Any other
 * name is checked on its own, as its bytes cannot travel through xargs or sha256sum's output. POSIX sh, awk,
 * xargs -r, stat -c: Debian's and busybox's alike. The digest is `$H` (SHA256_TOOL: OpenSSL's where the image
 * has it, a `*` before the name).
 */
export const CHECKSUM_SCRIPT = `T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; : > "$T/p"; : > "$T/o"
${SHA256_TOOL}
tab=$(printf '\\t')
awk -F "$tab" -v plain="^[${PLAIN}]+\$" -v p="$T/p" -v o="$T/o" '$2 ~ plain { print $1, $3, $4, $5, $2 > p; next } { print > o }'
while IFS="$tab" read -r i enc size mtime ctime; do
  p=$(printf '%bx' "$enc"); p=\${p%x}
  r="/drill/$p"; l="/live/$p"; rh=-; lh=-; rs=-
  if [ -f "$r" ]; then rs=$(stat -c %s "$r"); rh=$($H < "$r" | cut -d' ' -f1); fi
  if [ -f "$l" ] && [ ! -L "$l" ] && [ "$(realpath "$l" 2>/dev/null; printf x)" = "$l
x" ] && [ "$(stat -c '%s %Y %Z' "$l")" = "$size $mtime $ctime" ]; then lh=$($H < "$l" | cut -d' ' -f1); fi
  printf '%s\\t%s\\t%s\\t%s\\n' "$i" "$rs" "$rh" "$lh"
done < "$T/o"
[ -s "$T/p" ] || exit 0
D="/drill/"; L="/live/"
paths() { awk -v at="$1" '{ print at $5 }' "$T/p"; }
paths "$D" | xargs -r stat -L -c '%s %n' > "$T/rs" 2>/dev/null || true
# The restored copy and the live files are hashed at once, one core each.
{ paths "$D" | xargs -r $H > "$T/rh" 2>/dev/null || true; } &
# The live file is the reference only while it is the regular file the backup read (same size, mtime and
# ctime: a user can set a file's mtime back after rewriting it, not its ctime; none in the listing, no reference):
# never a symlink (a compromised web can plant one), which stat without -L shows as one, nor a file reached
# through a symlinked folder (stat follows those: /live/docs -> /drill/docs would compare the copy with
# itself); realpath keeps a path only where it is itself, under /live/.
paths "$L" | xargs -r stat -c '%A %s %Y %Z %n' 2>/dev/null \\
  | awk -v at="$L" 'NR == FNR { want[at $5] = $2 " " $3 " " $4; next } substr($1, 1, 1) == "-" && want[$5] == $2 " " $3 " " $4 { print $5 }' "$T/p" - \\
  | xargs -r realpath 2>/dev/null | awk -v at="$L" 'NR == FNR { want[at $5]; next } $0 in want' "$T/p" - \\
  | xargs -r $H > "$T/lh" 2>/dev/null || true
wait
{ sed 's/^/P /' "$T/p"; sed 's/^/S /' "$T/rs"; sed 's/^/H /' "$T/rh"; sed 's/^/L /' "$T/lh"; } | awk -v d="$D" -v l="$L" '
  $1 == "P" { n++; rel[n] = $6; pos[n] = $2; next }
  $1 == "S" { size[substr($3, length(d) + 1)] = $2; next }
  $1 == "H" { f = $3; sub(/^[*]/, "", f); if (index(f, d) == 1) sum[substr(f, length(d) + 1)] = $2; next }
  $1 == "L" { f = $3; sub(/^[*]/, "", f); live[substr(f, length(l) + 1)] = $2; next }
  END {
    for (k = 1; k <= n; k++) {
      f = rel[k]
      if (f in sum) { rs = size[f]; rh = sum[f] } else { rs = "-"; rh = "-" }
      printf "%s\\t%s\\t%s\\t%s\\n", pos[k], rs, rh, (f in live) ? live[f] : "-"
    }
  }'`;

/**
 * Restored bytes against the live file when the live file is still the one the backup read (same size,
 * mtime and ctime): a reference restic did not produce. Otherwise size against the snapshot's listing. In, one
 * line per file: its position, its path (octalPath), size, mtime, ctime (`-`: none); out: position, restored size, restored
 * sha256, live sha256 (`-` where there is none). `x` keeps a name's trailing newline through `$(…)`. A
 * symlink in live media (a compromised web can plant one) is no reference: it is never followed.
 */
export async function checksumRestored(
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
