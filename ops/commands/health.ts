import { Command } from "commander";
import { Settings } from "../../model/settings";
import { openStack, waitSeconds } from "../core/context";
import { failure } from "../core/errors";
import { backupFreshness, CheckResult, runChecks } from "../reports/health";
import { progress, say } from "../core/log";
import { describeSchedule, scheduleReport } from "../schedule/records";
import { AlertReport, alertReport, describeAlerts } from "../alerts/report";
import { BackupListing, listBackups } from "../store/catalog";
import { describeOffsite, OffsiteLag, offsiteLag, offsiteNeedsAttention } from "../store/offsite";

/** The off-host repository's lag, last copy and locks; null without `edms:backup.offsite`. */
async function offsiteReport(
  settings: Settings,
  listing: Promise<BackupListing>,
): Promise<OffsiteLag | null> {
  const local = await listing.then(
    (l) => l.complete,
    () => [],
  );
  return offsiteLag(settings, local);
}

export function register(program: Command): void {
  program
    .command("health")
    .description(
      "Check postgres, redis, worker, media writable, no unapplied migrations and HTTP /health/ 200",
    )
    .option("--wait <seconds>", "keep checking until healthy or this many seconds pass", "0")
    .option("--json", "print the checks as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops health --stack production\n  edms-ops health --stack staging --wait 120",
    )
    .action(healthCommand);
}

/** Runs the checks until they pass or `wait` seconds are over; the last round's results. */
async function checkUntil(settings: Settings, wait: number): Promise<CheckResult[]> {
  const deadline = Date.now() + wait * 1000;
  for (;;) {
    const checks = await runChecks(settings);
    const failing = checks.filter((c) => !c.ok);
    if (failing.length === 0 || Date.now() >= deadline) {
      return checks;
    }
    progress(`waiting: ${failing.map((c) => `${c.name} (${c.detail})`).join(", ")}`);
    // A round takes ~1 s itself; a new web is usually ready within a few: each deploy's gate waits less.
    await new Promise((r) => setTimeout(r, 1000));
  }
}

type Freshness = Awaited<ReturnType<typeof backupFreshness>>;
type ScheduleState = Awaited<ReturnType<typeof scheduleReport>> | { problem: string };

function printHealth(
  checks: CheckResult[],
  backup: Freshness,
  schedule: ScheduleState,
  alerts: AlertReport | null,
  offsite: OffsiteLag | null,
  stack: string,
): void {
  checks.forEach((c) => say(`${c.ok ? "ok  " : "FAIL"} ${c.name}${c.ok ? "" : `: ${c.detail}`}`));
  say(
    `info newest good backup: ${
      backup.newestGood ? `${backup.newestGood}, ${backup.ageHours} h old` : "none"
    }${backup.failedDrills.length ? ` (newer, failed their drill: ${backup.failedDrills.join(", ")})` : ""}${
      backup.problem ? ` (backups cannot be listed: ${backup.problem})` : ""
    }`,
  );
  // A failed or missed scheduled backup is reported here, loudly, but is no reason to fail the web's
  // health (or a deploy's health gate).
  say(
    `${schedule.problem ? "WARN" : "info"} ${
      "enabled" in schedule ? describeSchedule(schedule) : `scheduled backups: ${schedule.problem}`
    }`,
  );
  say(`${alerts?.firing.length ? "WARN" : "info"} ${describeAlerts(alerts)}`);
  if (offsite) {
    const level = offsiteNeedsAttention(offsite) ? "WARN" : "info";
    describeOffsite(stack, offsite).forEach((line) => say(`${level} ${line}`));
  }
}

async function healthCommand(
  opts: { wait: string; json?: boolean },
  command: Command,
): Promise<void> {
  const wait = waitSeconds(opts.wait);
  const settings = await openStack(command);
  // Read while the checks run. Reported, never part of the verdict: an old backup is no reason to fail the
  // web's health.
  const listing = listBackups(settings, { legacy: false });
  const reports = Promise.all([
    backupFreshness(settings, listing),
    scheduleReport(settings).catch((err: Error): ScheduleState => ({
      problem: `cannot be read: ${err.message.split("\n")[0]}`,
    })),
    alertReport(settings),
    // The deploy's gate (--wait) never waits on the off-host repository; an operator's health looks there.
    wait ? null : offsiteReport(settings, listing),
  ]);
  // Awaited below, after the checks: a rejection meanwhile is not an unhandled one.
  reports.catch(() => undefined);
  const checks = await checkUntil(settings, wait);
  const healthy = checks.every((c) => c.ok);
  const [backup, schedule, alerts, offsite] = await reports;
  if (opts.json) {
    say(JSON.stringify({ healthy, checks, backup, schedule, alerts, offsite }, null, 2));
  } else {
    printHealth(checks, backup, schedule, alerts, offsite, settings.stack);
  }
  if (!healthy) {
    throw failure(
      `stack ${settings.stack} is not healthy${wait ? ` after ${wait}s` : ""}.`,
      `Roll back with \`edms-ops rollback --previous --backup-first --stack ${settings.stack}\`.`,
    );
  }
}
