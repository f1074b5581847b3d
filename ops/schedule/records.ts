/**
 * The record of scheduled backups: `schedule.jsonl` in the backups volume, one JSON line per scheduler start
 * and per attempt (due, started, finished, outcome, backup id or error). The scheduler writes it; `status`,
 * `health` and `evidence` read it. What was missed, what is next and what to catch up after the host was down
 * are pure functions of the schedule, the records and the time, so the unit tests state them exactly.
 */
import { lastDue, nextDue, scheduleEnabled } from "../../model/schedule";
import { Settings } from "../../model/settings";
import { inspectContainer } from "../engine/docker";
import { currentOperation } from "../engine/lock";
import { backupsMount, readBackupsVolume, toolbox } from "../engine/toolbox";
import { LAYOUT } from "../store/layout";
import { ScheduleRecord, ScheduleRecordSchema, ScheduleRun } from "../store/records";
import { parseJsonLines } from "../core/json";

export const SCHEDULE_FILE = LAYOUT.schedule;
/** The file is cut back to its newest half once it has this many lines (a year of 6-hourly runs ≈ 1,500). */
const MAX_LINES = 4000;

export type { RunOutcome, ScheduleRecord, ScheduleRun, ScheduleStart } from "../store/records";

/** The records of schedule.jsonl, oldest first; a torn last line from a killed append is no record. */
export function parseScheduleRecords(text: string): ScheduleRecord[] {
  return parseJsonLines(text, ScheduleRecordSchema);
}

/** The latest time up to which every due has been handled: attempted, or before a (re)start decided on it. */
function coveredUntil(records: readonly ScheduleRecord[]): number | null {
  let covered: number | null = null;
  for (const r of records) {
    const t = Date.parse(r.kind === "run" ? r.due : r.at);
    if (covered === null || t > covered) {
      covered = t;
    }
  }
  return covered;
}

/**
 * What the scheduler runs at start-up, like anacron: the last due, when it passed after the last attempt
 * and after the last start, i.e. while no scheduler was running. A first start ever catches nothing up (no
 * schedule existed before it); several missed dues make one catch-up run.
 */
export function catchUpDue(
  schedule: string,
  records: readonly ScheduleRecord[],
  now: Date,
): Date | null {
  const due = lastDue(schedule, now);
  const covered = coveredUntil(records);
  return due && covered !== null && due.getTime() > covered ? due : null;
}

/** How late a run's record may be before its due counts as missed: one period, at least 1 min, at most 15. */
export function missedGraceMs(schedule: string, due: Date): number {
  const following = nextDue(schedule, due);
  const period = following ? following.getTime() - due.getTime() : 0;
  return Math.min(15 * 60_000, Math.max(60_000, period));
}

export interface ScheduleState {
  readonly schedule: string;
  readonly enabled: boolean;
  readonly timezone: "UTC";
  readonly nextDue: string | null;
  /** The newest attempt, whatever its outcome. */
  readonly lastRun: ScheduleRun | null;
  /** The newest attempt that took a backup. */
  readonly lastOk: ScheduleRun | null;
  /** A due that passed with no attempt recorded (scheduler stopped, host down), beyond the grace time. */
  readonly missed: string | null;
  /** One line for operators when something needs attention: failed/skipped last run, missed due. */
  readonly problem: string | null;
}

/** Pure: the schedule's state at `now` from its records; `inProgress` when a scheduled backup holds the lock. */
export function scheduleState(
  schedule: string,
  records: readonly ScheduleRecord[],
  now: Date,
  inProgress = false,
): ScheduleState {
  const enabled = scheduleEnabled(schedule);
  const runs = records.filter((r): r is ScheduleRun => r.kind === "run");
  const lastRun = runs.length ? runs[runs.length - 1] : null;
  const lastOk = [...runs].reverse().find((r) => r.outcome === "ok") ?? null;
  const due = enabled ? lastDue(schedule, now) : null;
  const covered = coveredUntil(records);
  const missed =
    due &&
    covered !== null &&
    due.getTime() > covered &&
    !inProgress &&
    now.getTime() - due.getTime() > missedGraceMs(schedule, due)
      ? due.toISOString()
      : null;
  const problem =
    [
      missed
        ? `the backup due ${missed} was not attempted (scheduler stopped or host down?)`
        : null,
      lastRun && !lastRun.ok
        ? `the last scheduled backup (due ${lastRun.due}) ${lastRun.outcome === "skipped" ? "was skipped" : "FAILED"}: ${lastRun.error ?? "no detail"}`
        : null,
    ]
      .filter(Boolean)
      .join("; ") || null;
  return {
    schedule,
    enabled,
    timezone: "UTC",
    nextDue: enabled ? (nextDue(schedule, now)?.toISOString() ?? null) : null,
    lastRun,
    lastOk,
    missed,
    problem,
  };
}

export async function readScheduleRecords(settings: Settings): Promise<ScheduleRecord[]> {
  return parseScheduleRecords(
    await readBackupsVolume(settings, `tail -n ${MAX_LINES} ${SCHEDULE_FILE} 2>/dev/null || true`),
  );
}

/** Appends one record (and cuts the file back when it has grown past MAX_LINES); never creates the volume. */
export async function appendScheduleRecord(
  settings: Settings,
  record: ScheduleRecord,
): Promise<void> {
  await toolbox(
    settings,
    [backupsMount(settings)],
    `cat >> ${SCHEDULE_FILE}
if [ "$(wc -l < ${SCHEDULE_FILE})" -gt ${MAX_LINES} ]; then
  tail -n ${MAX_LINES / 2} ${SCHEDULE_FILE} > ${SCHEDULE_FILE}.tmp && mv ${SCHEDULE_FILE}.tmp ${SCHEDULE_FILE}
fi
sync`,
    { input: JSON.stringify(record) + "\n" },
  );
}

export interface ScheduleReport extends ScheduleState {
  /** The `<prefix>-scheduler` container: running, stopped or missing; null when the schedule is off. */
  readonly scheduler: string | null;
}

/** What `status`, `health` and `evidence` show of the schedule; read without the stack lock. */
export async function scheduleReport(settings: Settings): Promise<ScheduleReport> {
  const schedule = settings.backup.schedule;
  // status and health report what they can: an unreadable record is a problem line, not an error.
  let unreadable: string | null = null;
  const [records, operation, container] = await Promise.all([
    readScheduleRecords(settings).catch((err: Error) => {
      unreadable = `schedule.jsonl cannot be read: ${err.message.split("\n")[0]}`;
      return [] as ScheduleRecord[];
    }),
    currentOperation(settings),
    inspectContainer(settings.names.schedulerContainer),
  ]);
  const state = scheduleState(
    schedule,
    records,
    new Date(),
    operation?.includes("backup --reason scheduled") ?? false,
  );
  if (!state.enabled) {
    return { ...state, scheduler: null };
  }
  const scheduler = container.exists ? (container.running ? "running" : "stopped") : "missing";
  const stopped =
    scheduler === "running"
      ? null
      : `the scheduler container ${settings.names.schedulerContainer} is ${scheduler} (\`pulumi up\` starts it)`;
  return {
    ...state,
    scheduler,
    problem: [unreadable, state.problem, stopped].filter(Boolean).join("; ") || null,
  };
}

/** One line for operators: the schedule, its last run and what needs attention. */
export function describeSchedule(report: ScheduleReport): string {
  if (!report.enabled) {
    return "scheduled backups: off (`edms:backup.schedule`)";
  }
  const last = report.lastRun
    ? `last run due ${report.lastRun.due}: ${report.lastRun.outcome}${report.lastRun.backup ? ` (${report.lastRun.backup})` : ""}`
    : "no run yet";
  return (
    `scheduled backups \`${report.schedule}\` (UTC), scheduler ${report.scheduler}: ${last}; next ${report.nextDue ?? "-"}` +
    (report.problem ? `; ATTENTION: ${report.problem}` : "")
  );
}
