/**
 * Which backups a prune keeps: a policy, not "newest N". Pure, so the unit tests state it exactly.
 *
 * - the newest `keep`, ordered by snapshot time (the Docker host's clock, not the operator's);
 * - every pre-deploy backup whose target is the running or the previous release: they are what
 *   `rollback --previous --restore` restores, whatever their age;
 * - every backup pinned by an operation in progress (the one a restore, verify or export is reading).
 */
import { BackupEntry } from "./restic";

export interface RetentionInput {
  readonly backups: readonly BackupEntry[];
  readonly keep: number;
  /** Releases whose pre-deploy backups are rollback targets: running and previous. */
  readonly rollbackReleases: readonly (string | null | undefined)[];
  /** Backup ids an operation in progress uses. */
  readonly pinned: readonly string[];
}

export interface RetentionDecision {
  readonly keep: { readonly entry: BackupEntry; readonly why: string }[];
  readonly forget: BackupEntry[];
}

export function retention(input: RetentionInput): RetentionDecision {
  const newestFirst = [...input.backups].sort(
    (a, b) => Date.parse(b.time) - Date.parse(a.time) || b.id.localeCompare(a.id),
  );
  const releases = new Set(input.rollbackReleases.filter((r): r is string => !!r));
  const decision: RetentionDecision = { keep: [], forget: [] };
  newestFirst.forEach((entry, index) => {
    const why =
      index < input.keep
        ? `one of the newest ${input.keep}`
        : input.pinned.includes(entry.id)
          ? "in use by this operation"
          : entry.reason === "pre-deploy" && entry.target && releases.has(entry.target)
            ? `rollback target (pre-deploy backup of ${entry.target})`
            : undefined;
    if (why) {
      decision.keep.push({ entry, why });
    } else {
      decision.forget.push(entry);
    }
  });
  return decision;
}

/** Running release first, then the one deployed before it (history is oldest first). */
export function rollbackReleases(
  running: string | null,
  history: readonly { version: string }[],
): string[] {
  const versions = history.map((d) => d.version);
  const current = running ?? versions[versions.length - 1];
  const previous = [...versions].reverse().find((v) => v !== current);
  return [current, previous].filter((v): v is string => !!v);
}
