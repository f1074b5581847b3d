/**
 * What is wrong with a stack's backups right now, as alert conditions: a pure function of the records the
 * scheduler reads (schedule.jsonl, the backup listings, the latest drill, the restore marker) and the time,
 * so the unit tests state every rule exactly. Each condition says what failed and the command to run next.
 */
import { durationMs, RPO_OFF, Settings } from "../../model/settings";
import type { BackupFreshness } from "../reports/health";
import type { ScheduleState } from "../schedule/records";
import type { OffsiteLag } from "../store/offsite";
import { failedOnHostOnly, type DrillRecord, type RestoreMarker } from "../store/records";
import { confirmFlag } from "../store/markers";

export const CONDITIONS = [
  "backup-failed",
  "backup-skipped",
  "backup-missed",
  "offsite-lag",
  "drill-failed",
  "restore-incomplete",
  "rpo-exceeded",
] as const;
export type ConditionKey = (typeof CONDITIONS)[number];

export interface Condition {
  readonly key: ConditionKey;
  /** One line: what is wrong. */
  readonly summary: string;
  /** What the records say: times, ids, the error. */
  readonly detail: string;
  /** The command an operator runs next. */
  readonly next: string;
}

/** What the scheduler read; null where a record could not be read (no condition is raised on the unknown). */
export interface AlertInputs {
  readonly schedule: ScheduleState | null;
  /** When the scheduler first started (schedule.jsonl), for an RPO with no backup at all. */
  readonly firstStart: string | null;
  /** Complete local backups, oldest first. */
  readonly local: readonly { readonly id: string; readonly time: string }[] | null;
  readonly offsite: OffsiteLag | null;
  readonly drill: DrillRecord | null;
  readonly restore: RestoreMarker | null;
  readonly freshness: BackupFreshness | null;
  /**
   * Inputs whose null means "could not be read" rather than "none" (drill, restore: no drill and no marker
   * are normal). schedule, local, offsite and freshness are null only when unread.
   */
  readonly unread?: readonly ("drill" | "restore")[];
}

const HOUR = 3_600_000;

function scheduleConditions(settings: Settings, schedule: ScheduleState | null): Condition[] {
  const s = settings.stack;
  const last = schedule?.lastRun;
  const conditions: Condition[] = [];
  if (last && last.outcome === "failed") {
    conditions.push({
      key: "backup-failed",
      summary: `the scheduled backup of ${s} failed`,
      detail: `due ${last.due}, finished ${last.finished}: ${last.error ?? "no detail"}`,
      next: `edms-ops health --stack ${s}, then take one by hand: edms-ops backup --stack ${s}`,
    });
  }
  if (last && last.outcome === "skipped") {
    conditions.push({
      key: "backup-skipped",
      summary: `the scheduled backup of ${s} was skipped`,
      detail: `due ${last.due}: ${last.error ?? "the lock stayed busy"}`,
      next: `edms-ops status --stack ${s} (names the operation holding the lock, or the unfinished restore)`,
    });
  }
  const missed = schedule?.missed ?? (last?.catchUp ? last.due : null);
  if (missed) {
    conditions.push({
      key: "backup-missed",
      summary: `a scheduled backup of ${s} was missed`,
      detail: schedule?.missed
        ? `the backup due ${missed} was not attempted (a longer run overlapped it, or the scheduler was stopped)`
        : `the backup due ${missed} passed while the scheduler was not running (host down or container stopped); it was caught up: ${last?.outcome}`,
      next: `edms-ops status --stack ${s}`,
    });
  }
  return conditions;
}

function offsiteCondition(settings: Settings, inputs: AlertInputs, now: Date): Condition | null {
  const lag = inputs.offsite;
  if (!lag || !settings.backup.offsite) {
    return null;
  }
  const s = settings.stack;
  const next = `edms-ops backups list --offsite --stack ${s}`;
  if (!lag.reachable) {
    return {
      key: "offsite-lag",
      summary: `the off-host repository of ${s} cannot be listed`,
      detail: `${lag.repository}: ${(lag.problem ?? "no answer").split("\n")[0]}`,
      next,
    };
  }
  const missing = new Set(lag.missing ?? []);
  const behind = (inputs.local ?? []).filter((b) => missing.has(b.id));
  const oldest = behind.length ? Date.parse(behind[0].time) : null;
  const hours = oldest === null ? 0 : (now.getTime() - oldest) / HOUR;
  const { offsiteLagBackups, offsiteLagHours } = settings.alerts;
  if (missing.size <= offsiteLagBackups && hours <= offsiteLagHours) {
    return null;
  }
  return {
    key: "offsite-lag",
    summary: `the off-host copy of ${s} lags behind`,
    detail:
      `${missing.size} local backup(s) have no copy in ${lag.repository} (alert above ${offsiteLagBackups}); ` +
      `the oldest of them is ${hours.toFixed(1)} h old (alert above ${offsiteLagHours} h)`,
    next,
  };
}

function drillCondition(settings: Settings, drill: DrillRecord | null): Condition | null {
  if (!drill || drill.ok) {
    return null;
  }
  const failed = drill.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  return {
    key: "drill-failed",
    // Failed on the host only (hostFault.ts): the backup is not at fault, and the alert must not say so.
    summary: failedOnHostOnly(drill.checks)
      ? `the latest drill of ${settings.stack} could not finish: the host failed (disk space or memory), not backup ${drill.backup}`
      : `the latest drill of ${settings.stack} failed: backup ${drill.backup} did not restore cleanly`,
    detail: `drill ${drill.id} (${drill.trigger}, ${drill.finishedAt}): ${failed.join("; ") || "failed"}`,
    next: `edms-ops drill ${drill.backup} --stack ${settings.stack} (again, once the cause is fixed)`,
  };
}

function restoreCondition(settings: Settings, marker: RestoreMarker | null): Condition | null {
  if (!marker) {
    return null;
  }
  const confirm = confirmFlag(settings);
  return {
    key: "restore-incomplete",
    summary: `a restore of ${settings.stack} was left incomplete: the data may be half restored`,
    detail:
      `restore of ${marker.id}${marker.started ? ` started ${marker.started}` : ""}` +
      (marker.undo ? `; its undo backup is ${marker.undo}` : ""),
    next: `edms-ops restore ${marker.id} --stack ${settings.stack}${confirm}`,
  };
}

function rpoCondition(settings: Settings, inputs: AlertInputs, now: Date): Condition | null {
  const rpo = settings.backup.rpo;
  const limit = rpo === RPO_OFF ? null : durationMs(rpo);
  const fresh = inputs.freshness;
  if (limit === null || !fresh || fresh.problem) {
    return null;
  }
  const s = settings.stack;
  const next = `edms-ops backups list --stack ${s}, then edms-ops backup --stack ${s}`;
  if (fresh.time === null) {
    // A new stack has no backup yet: only once the scheduler has run for longer than the objective.
    const started = inputs.firstStart ? Date.parse(inputs.firstStart) : null;
    return started !== null && now.getTime() - started > limit
      ? {
          key: "rpo-exceeded",
          summary: `${s} has no good backup (recovery point objective ${rpo})`,
          detail: `no backup that passed its drill since the scheduler started at ${inputs.firstStart}`,
          next,
        }
      : null;
  }
  const age = now.getTime() - Date.parse(fresh.time);
  if (age <= limit) {
    return null;
  }
  return {
    key: "rpo-exceeded",
    summary: `the newest good backup of ${s} is older than its recovery point objective (${rpo})`,
    detail: `${fresh.newestGood} from ${fresh.time}, ${(age / HOUR).toFixed(1)} h old`,
    next,
  };
}

/**
 * The conditions the inputs tell about, holding or clear: one whose input could not be read is neither, and
 * decide() keeps its alert as it was (an unreadable listing is no recovery).
 */
export function evaluatedKeys(settings: Settings, inputs: AlertInputs): Set<ConditionKey> {
  const keys = new Set<ConditionKey>();
  if (inputs.schedule) {
    keys.add("backup-failed").add("backup-skipped").add("backup-missed");
  }
  if (!settings.backup.offsite || inputs.offsite) {
    keys.add("offsite-lag");
  }
  const unread = inputs.unread ?? [];
  if (!unread.includes("drill")) {
    keys.add("drill-failed");
  }
  if (!unread.includes("restore")) {
    keys.add("restore-incomplete");
  }
  const fresh = inputs.freshness;
  const rpoOff = settings.backup.rpo === RPO_OFF;
  if (rpoOff || (fresh && !fresh.problem && (fresh.time !== null || inputs.schedule))) {
    keys.add("rpo-exceeded");
  }
  return keys;
}

/** What holds, and which conditions were looked at at all (see evaluatedKeys). */
export function assess(settings: Settings, inputs: AlertInputs, now: Date) {
  return {
    conditions: evaluate(settings, inputs, now),
    evaluated: evaluatedKeys(settings, inputs),
  };
}

/** Every condition that holds at `now`, in CONDITIONS order. */
export function evaluate(settings: Settings, inputs: AlertInputs, now: Date): Condition[] {
  return [
    ...scheduleConditions(settings, inputs.schedule),
    offsiteCondition(settings, inputs, now),
    drillCondition(settings, inputs.drill),
    restoreCondition(settings, inputs.restore),
    rpoCondition(settings, inputs, now),
  ].filter((c): c is Condition => c !== null);
}
