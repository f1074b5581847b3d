/**
 * Which backups a prune keeps: a policy, not "newest N". Pure, so the unit tests state it exactly.
 *
 * - the newest `keep`, ordered by snapshot time (the Docker host's clock, not the operator's);
 * - every pre-deploy backup whose target is the running or the previous release: they are what
 *   `rollback --previous --restore` restores, whatever their age; and the newest one taken after the last
 *   recorded deploy (a deploy in progress, or one that failed before its record);
 * - every backup pinned by an operation in progress (the one a restore, verify or export is reading);
 * - `keepDaily` / `keepWeekly` / `keepMonthly`: restic's `forget --keep-daily/-weekly/-monthly` policy,
 *   the newest backup of each of the last N days / ISO weeks / months that have one (UTC, the host's
 *   clock). Decided here rather than by `restic forget --keep-*` so that one decision, explained per
 *   backup, covers rollback targets and pinned backups too, the same for the local and the off-host
 *   repository, with no extra restic run (each pays the key's scrypt).
 * - what a listing alone says must stay (restic tags, so a new host with an empty backups volume decides the
 *   same from the off-host repository): imported backups (tag `imported`) until `backups forget`; the undo
 *   backup of a restore, a reset-app or a rollback (reason `pre-restore`, `pre-reset-app`, `pre-rollback`;
 *   or named by an unfinished restore's marker) until a later deploy supersedes it (not the one that
 *   finishes a restore of another release: supersedingDeploy; not the rollback's own records:
 *   undoSuperseded) or `backups forget` releases it; the backup an unfinished restore restores.
 * - what never counts as newest: a backup dated after the host's clock (more than CLOCK_SKEW_MS ahead) is
 *   kept but takes no newest, daily/weekly/monthly slot; a backup of a database holding only the bootstrap
 *   (tag `bootstrap`, see ops/store/bootstrap.ts) takes a newest slot only while fewer than `keep` backups of
 *   real data exist, and no periodic slot: it never pushes a backup of real data out.
 */
import { REASONS } from "../../model/hooks";
import { BackupEntry } from "./restic";
import type { Deployment, RestoreRecord } from "./records";

/** How far a snapshot may be ahead of the host's clock before it is "dated in the future". */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** A snapshot timed after the host's clock (plus skew): flagged, and never the newest of anything. */
export function isFutureDated(entry: Pick<BackupEntry, "time">, now: string | number): boolean {
  const clock = typeof now === "number" ? now : Date.parse(now);
  return Number.isFinite(clock) && Date.parse(entry.time) > clock + CLOCK_SKEW_MS;
}

/** The backups that may count as newest at `now` (listing order kept); without a clock, all. */
export function notFutureDated<T extends Pick<BackupEntry, "time">>(
  entries: readonly T[],
  now: string | number | undefined,
): T[] {
  return now === undefined ? [...entries] : entries.filter((e) => !isFutureDated(e, now));
}

/**
 * The operations whose backup of the state they replace is their undo, by the backup's reason: `restore`,
 * `reset-app` and `rollback --backup-first` each name it as the way back, and retention keeps it until a
 * deploy supersedes it, however many backups come after it.
 */
const UNDO_OF: ReadonlyMap<string, string> = new Map([
  [REASONS.preRestore, "a restore"],
  [REASONS.preResetApp, "a reset-app"],
  [REASONS.preRollback, "a rollback"],
]);

/** What the backup undoes (`a restore`, `a reset-app`, `a rollback`), or undefined: not an undo. */
export function undoOf(entry: Pick<BackupEntry, "reason">): string | undefined {
  return UNDO_OF.get(entry.reason);
}

export interface RetentionInput {
  readonly backups: readonly BackupEntry[];
  readonly keep: number;
  /** Releases whose pre-deploy backups are rollback targets: running and previous. */
  readonly rollbackReleases: readonly (string | null | undefined)[];
  /** Backup ids an operation in progress uses. */
  readonly pinned: readonly string[];
  /** restic's --keep-daily/--keep-weekly/--keep-monthly counts; absent or 0: not applied. */
  readonly periodic?: PeriodicKeeps;
  /** The host's clock: backups dated after it never count as newest. Absent: not checked. */
  readonly now?: string;
  /** When the last successful deploy was recorded. */
  readonly lastDeploy?: string | null;
  /**
   * When the deploy that supersedes the undo backups taken before it was recorded (supersedingDeploy);
   * absent: lastDeploy.
   */
  readonly supersedingDeploy?: string | null;
  /**
   * The deployment history (oldest first): what supersedes a rollback's undo (undoSuperseded). Absent: for
   * it too, lastDeploy.
   */
  readonly deploys?: readonly Pick<Deployment, "version" | "deployedAt" | "rolledBackFrom">[];
  /** Undo backups named by an unfinished restore's marker. */
  readonly restoreUndo?: readonly string[];
  /** The backup an unfinished restore's marker names: running that restore again finishes it. */
  readonly restoreTarget?: readonly string[];
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

/** Newest first by the host's snapshot time, then id. */
function newestFirst(backups: readonly BackupEntry[]): BackupEntry[] {
  return [...backups].sort(
    (a, b) => Date.parse(b.time) - Date.parse(a.time) || b.id.localeCompare(a.id),
  );
}

/** Ids in the newest `keep` slots: backups of real data first, bootstrap ones only in slots left over. */
function newestSlots(counted: readonly BackupEntry[], keep: number): Set<string> {
  const real = counted.filter((b) => !b.bootstrap);
  const bootstrap = counted.filter((b) => b.bootstrap);
  const slots = [...real.slice(0, keep), ...bootstrap.slice(0, Math.max(0, keep - real.length))];
  return new Set(slots.map((b) => b.id));
}

/**
 * The newest pre-deploy backup taken after the last recorded deploy: that of a deploy in progress (the
 * scheduler may prune between its backup and its record, when the release is no rollback target yet) or of
 * one that failed before it was recorded, which `rollback --after-failed-deploy` restores.
 */
function unrecordedPreDeploy(
  newestFirst: readonly BackupEntry[],
  lastDeploy: string | null | undefined,
): BackupEntry | undefined {
  const after = lastDeploy ? Date.parse(lastDeploy) : -Infinity;
  return newestFirst.find((b) => b.reason === REASONS.preDeploy && Date.parse(b.time) > after);
}

/**
 * When the deploy that supersedes undo backups was recorded: the newest one, unless it is the only deploy since
 * the last restore and of that restore's release. That is the deploy a restore of another release's backup
 * asks for (its web and worker stay stopped until then): it completes the restore, and that restore's undo
 * stays until a deploy after it. Null: no deploy on record.
 */
export function supersedingDeploy(
  history: readonly Pick<Deployment, "version" | "deployedAt">[],
  restored: Pick<RestoreRecord, "release" | "restoredAt"> | null,
): string | null {
  const newest = history.length ? history[history.length - 1] : undefined;
  if (!newest || !restored?.release) {
    return newest?.deployedAt ?? null;
  }
  const at = Date.parse(restored.restoredAt);
  const since = history.filter((d) => Date.parse(d.deployedAt) > at);
  if (since.length !== 1 || since[0].version !== restored.release) {
    return newest.deployedAt;
  }
  const before = history.filter((d) => Date.parse(d.deployedAt) <= at);
  return before.length ? before[before.length - 1].deployedAt : null;
}

/** Why one backup is kept regardless of slots, or undefined. */
function protectedBecause(
  entry: BackupEntry,
  input: RetentionInput,
  releases: ReadonlySet<string>,
  unrecorded: BackupEntry | undefined,
): string | undefined {
  if (input.pinned.includes(entry.id)) {
    return "in use by this operation";
  }
  if (input.restoreUndo?.includes(entry.id)) {
    return "undo of the unfinished restore";
  }
  if (input.restoreTarget?.includes(entry.id)) {
    return "backup the unfinished restore is restoring (running it again finishes it)";
  }
  const undoes = undoOf(entry);
  if (undoes && !undoSuperseded(entry, input)) {
    return `undo of ${undoes} (until a deploy supersedes it or \`backups forget\` releases it)`;
  }
  if (entry.reason === REASONS.preDeploy && entry.target && releases.has(entry.target)) {
    return `rollback target (pre-deploy backup of ${entry.target})`;
  }
  if (entry === unrecorded) {
    return `pre-deploy backup of a deploy not recorded yet${entry.target ? ` (of ${entry.target})` : ""}`;
  }
  return undefined;
}

/**
 * Whether a deploy recorded after an undo backup supersedes it (without a deploy on record, none is; nor does
 * a record whose date does not parse). A restore's: supersedingDeploy. A reset-app's: the newest deploy. A
 * rollback's (its `target` the release it goes back to): a deploy after it other than that rollback's own
 * records, which are those with `rolledBackFrom` and, when the newest deploy before the undo is not of the
 * target yet, the first deploy of the target after it: the redeploy, which follows the undo without the
 * proxy and precedes it behind the proxy (or follows it by the two clocks compared, the deploying machine's
 * and the Docker host's, and then the newest deploy before the undo is not of the target either).
 */
function undoSuperseded(entry: BackupEntry, input: RetentionInput): boolean {
  const taken = Date.parse(entry.time);
  const after = (deployedAt: string) => Date.parse(deployedAt) >= taken; // false for NaN
  if (entry.reason === REASONS.preRollback && input.deploys !== undefined) {
    const before = input.deploys.filter((d) => Date.parse(d.deployedAt) < taken).pop();
    let redeployAhead = entry.target !== undefined && before?.version !== entry.target;
    return input.deploys.some((d) => {
      if (!after(d.deployedAt) || d.rolledBackFrom) {
        return false;
      }
      if (redeployAhead && d.version === entry.target) {
        redeployAhead = false;
        return false;
      }
      return true;
    });
  }
  const deployed =
    entry.reason === REASONS.preRestore && input.supersedingDeploy !== undefined
      ? input.supersedingDeploy
      : input.lastDeploy;
  return !!deployed && after(deployed);
}

export function retention(input: RetentionInput): RetentionDecision {
  const ordered = newestFirst(input.backups);
  const future = new Set(
    input.now === undefined ? [] : ordered.filter((b) => isFutureDated(b, input.now!)),
  );
  const counted = ordered.filter((b) => !future.has(b) && !b.imported);
  const slots = newestSlots(counted, input.keep);
  const releases = new Set(input.rollbackReleases.filter((r): r is string => !!r));
  const periodic = periodicKeeps(
    counted.filter((b) => !b.bootstrap),
    input.periodic ?? {},
  );
  // Of the backups that count: an imported or future-dated one must not take this protection.
  const unrecorded = unrecordedPreDeploy(counted, input.lastDeploy);
  const decision: RetentionDecision = { keep: [], forget: [] };
  for (const entry of ordered) {
    const why = future.has(entry)
      ? "dated after the host's clock: kept, never counted as newest"
      : entry.imported
        ? "imported (kept until `backups forget`)"
        : slots.has(entry.id)
          ? `one of the newest ${input.keep}`
          : (protectedBecause(entry, input, releases, unrecorded) ?? periodic.get(entry.id));
    if (why) {
      decision.keep.push({ entry, why });
    } else {
      decision.forget.push(entry);
    }
  }
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
