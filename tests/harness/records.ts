/** Records as edms-ops writes them, for unit tests of what reads them. */
import type { ScheduleRun } from "../../ops/schedule/records";

/** One attempt of schedule.jsonl, as the scheduler records it (a failure says why in `error`). */
export function scheduleRun(
  due: string,
  outcome: ScheduleRun["outcome"] = "ok",
  extra: Partial<ScheduleRun> = {},
): ScheduleRun {
  const ok = outcome === "ok" || outcome === "nothing";
  return {
    kind: "run",
    schedule: "0 */6 * * *",
    due,
    started: due,
    finished: due,
    outcome,
    ok,
    catchUp: false,
    backup: outcome === "ok" ? `${due}-scheduled` : null,
    snapshot: null,
    error: ok ? null : "postgres is not running",
    ...extra,
  };
}
