/**
 * `edms:backup.schedule`: when the scheduler container on the Docker host takes `edms-ops backup --reason
 * scheduled`. A cron expression read in UTC (the host's clock, like backup ids and retention), parsed by
 * croner so the program (validation), the scheduler (when to fire) and `status`/`health` (what is due,
 * what was missed) agree on every time. No @pulumi import.
 */
import { Cron } from "croner";

/** The value that turns scheduled backups off (dev's default; refused on production). */
export const SCHEDULE_OFF = "off";

/** Production backs up every six hours, staging once a day, dev not at all unless asked. */
export const DEFAULT_SCHEDULES = {
  production: "0 */6 * * *",
  staging: "@daily",
  dev: SCHEDULE_OFF,
} as const;

const NICKNAMES = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];

/**
 * Why `expression` is not a schedule, or null when it is one (or `off`). 5 fields (minute hour day month
 * weekday), 6 with leading seconds, or a nickname; croner also reads a 7th (year) field, refused here so
 * the key means what cron means everywhere else.
 */
export function scheduleProblem(expression: string): string | null {
  const text = expression.trim();
  if (text === SCHEDULE_OFF) {
    return null;
  }
  if (text.startsWith("@")) {
    return NICKNAMES.includes(text)
      ? null
      : `\`${text}\` is not a cron nickname (${NICKNAMES.join(", ")})`;
  }
  const fields = text.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return `\`${text}\` has ${fields} field(s); a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)`;
  }
  try {
    const cron = new Cron(text, { timezone: "UTC", paused: true });
    if (!cron.nextRun(new Date())) {
      return `\`${text}\` never fires`;
    }
    return null;
  } catch (err) {
    return `\`${text}\` is not a cron expression (${(err as Error).message.replace(/^CronPattern: /, "")})`;
  }
}

export function scheduleEnabled(expression: string): boolean {
  return expression.trim() !== SCHEDULE_OFF;
}

function cron(expression: string): Cron {
  return new Cron(expression.trim(), { timezone: "UTC", paused: true });
}

/** The first time the schedule fires strictly after `after` (UTC); null when off. */
export function nextDue(expression: string, after: Date): Date | null {
  return scheduleEnabled(expression) ? cron(expression).nextRun(after) : null;
}

/** The last time the schedule fired at or before `at`; null when off or never. */
export function lastDue(expression: string, at: Date): Date | null {
  if (!scheduleEnabled(expression)) {
    return null;
  }
  // croner's previousRuns looks strictly before its reference; one millisecond on makes `at` itself count.
  const [previous] = cron(expression).previousRuns(1, new Date(at.getTime() + 1));
  return previous ?? null;
}
