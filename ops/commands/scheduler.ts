import { Command } from "commander";
import { Settings } from "../../model/settings";
import { nextDue, scheduleEnabled } from "../../model/schedule";
import { openStack, stackOf } from "../core/context";
import { refuse } from "../core/errors";
import { progress, say } from "../core/log";
import { clearStage, recordInterrupted, RunningAttempt, runScheduler } from "../schedule/scheduler";

export function register(program: Command): void {
  program
    .command("scheduler")
    .description(
      "Take scheduled backups (`edms:backup.schedule`, UTC) until stopped, recording each in schedule.jsonl; what the <prefix>-scheduler container runs on the Docker host",
    )
    .option("--next <count>", "only print the next <count> due times and exit")
    .addHelpText(
      "after",
      "\nThe program runs it in the <prefix>-scheduler container; `edms-ops status` shows its record.\n" +
        "Examples:\n  edms-ops scheduler --stack production --next 5\n  edms-ops scheduler --stack staging",
    )
    .action(schedulerCommand);
}

/** `--next N`: the next due times from the stack file alone. */
function printNextDues(settings: Settings, raw: string): void {
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 1 || count > 1000) {
    throw refuse(`--next takes a count 1–1000 (got \`${raw}\`).`, "Pass e.g. --next 5.");
  }
  if (!scheduleEnabled(settings.backup.schedule)) {
    say(`scheduled backups are off for ${settings.stack}`);
    return;
  }
  let at = new Date();
  for (let i = 0; i < count; i += 1) {
    const due = nextDue(settings.backup.schedule, at);
    if (!due) {
      break;
    }
    say(due.toISOString());
    at = due;
  }
}

/**
 * Runs the schedule until SIGTERM/SIGINT. A signal between backups stops at once; one during a backup
 * records the attempt as interrupted first, then exits 143.
 */
async function runUntilStopped(settings: Settings): Promise<void> {
  const stop = new AbortController();
  let running: RunningAttempt | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!running) {
      progress(`${signal}: scheduler stopping`);
      stop.abort();
      return;
    }
    const attempt = running;
    running = undefined;
    progress(
      `${signal} during the backup due ${attempt.due.toISOString()}: recording it, then stopping`,
    );
    void recordInterrupted(settings, attempt, signal)
      .catch((err: Error) => progress(`could not record the interruption: ${err.message}`))
      .then(clearStage)
      .finally(() => process.exit(143));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    await runScheduler(settings, {
      signal: stop.signal,
      onAttempt: (attempt) => (running = attempt),
    });
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

async function schedulerCommand(opts: { next?: string }, command: Command): Promise<void> {
  if (opts.next !== undefined) {
    printNextDues(stackOf(command), opts.next);
    return;
  }
  // Refused from the stack file alone, before any engine call.
  const fromFile = stackOf(command);
  if (!scheduleEnabled(fromFile.backup.schedule)) {
    throw refuse(
      `\`edms:backup.schedule\` is off for stack ${fromFile.stack}: there is nothing to schedule.`,
      "Set a cron expression, e.g. `pulumi config set --path edms:backup.schedule '0 3 * * *'`, and run `pulumi up`: it starts the scheduler container.",
    );
  }
  await runUntilStopped(await openStack(command));
}
