/**
 * Which backups a prune keeps: a policy, not "newest N". Pure, so the unit tests state it exactly.
 *
 * - the newest `keep`, ordered by snapshot time (the Docker host's clock, not the operator's);
 * - every pre-deploy backup whose target is the running or the previous release: they are what
 *   `rollback --previous --restore` restores, whatever their age;
 * - every backup pinned by an operation in progress (the one a restore, verify or export is reading);
 * - `keepDaily` / `keepWeekly` / `keepMonthly`: restic's `forget --keep-daily/-weekly/-monthly` policy,
 *   the newest backup of each of the last N days / ISO weeks / months that have one (UTC, the host's
 *   clock). Decided here rather than by `restic forget --keep-*` so that one decision, explained per
 *   backup, covers rollback targets and pinned backups too, the same for the local and the off-host
 *   repository, with no extra restic run (each pays the key's scrypt).
 */
import { REASONS } from "../../model/hooks";
import { BackupEntry } from "./restic";

export interface RetentionInput {
  readonly backups: readonly BackupEntry[];
  readonly keep: number;
  /** Releases whose pre-deploy backups are rollback targets: running and previous. */
  readonly rollbackReleases: readonly (string | null | undefined)[];
  /** Backup ids an operation in progress uses. */
  readonly pinned: readonly string[];
  /** restic's --keep-daily/--keep-weekly/--keep-monthly counts; absent or 0: not applied. */
  readonly periodic?: PeriodicKeeps;
}

export interface PeriodicKeeps {
  readonly keepDaily?: number;
  readonly keepWeekly?: number;
  readonly keepMonthly?: number;
}

/** ISO 8601 week of a UTC time, e.g. `2026-W48` (what restic's --keep-weekly buckets by). */
export function isoWeek(time: Date): string {
  const day = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), time.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the Thursday of its week decides the year
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

const BUCKETS: [keyof PeriodicKeeps, string, (t: Date) => string][] = [
  ["keepDaily", "daily", (t) => t.toISOString().slice(0, 10)],
  ["keepWeekly", "weekly", isoWeek],
  ["keepMonthly", "monthly", (t) => t.toISOString().slice(0, 7)],
];

/** Backup id → why restic's periodic policy keeps it (the first policy that does). */
function periodicKeeps(
  newestFirst: readonly BackupEntry[],
  keeps: PeriodicKeeps,
): Map<string, string> {
  const why = new Map<string, string>();
  for (const [key, name, bucket] of BUCKETS) {
    const count = keeps[key] ?? 0;
    const seen = new Set<string>();
    for (const entry of newestFirst) {
      const period = bucket(new Date(entry.time));
      if (seen.has(period)) {
        continue;
      }
      if (seen.size >= count) {
        break;
      }
      seen.add(period);
      if (!why.has(entry.id)) {
        why.set(entry.id, `${name} (newest of ${period})`);
      }
    }
  }
  return why;
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
  const periodic = periodicKeeps(newestFirst, input.periodic ?? {});
  const decision: RetentionDecision = { keep: [], forget: [] };
  newestFirst.forEach((entry, index) => {
    const why =
      index < input.keep
        ? `one of the newest ${input.keep}`
        : input.pinned.includes(entry.id)
          ? "in use by this operation"
          : entry.reason === REASONS.preDeploy && entry.target && releases.has(entry.target)
            ? `rollback target (pre-deploy backup of ${entry.target})`
            : periodic.get(entry.id);
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
