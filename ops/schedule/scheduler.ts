/**
 * The loop the `<prefix>-scheduler` container runs on the Docker host (`edms-ops scheduler`): at each due
 * time of `edms:backup.schedule` it takes the same backup as `edms-ops backup --reason scheduled` (dump,
 * media, manifest, retention; then the off-host copy, waited for after the stack lock is released), in this
 * process, and records the attempt in schedule.jsonl (a failed copy shows in `status`, not here).
 *
 * - Host reboots: the container restarts with the engine (`restart: unless-stopped`); at start-up a due that
 *   passed while it was down is run once, at once (catch-up, like anacron).
 * - Deploys: the backup takes the stack's lock like any operation; while a deploy holds it the run waits
 *   (EDMS_LOCK_WAIT, 600 s here unless set), then is recorded as skipped. Never two at once.
 * - Restores: while a restore is unfinished (its marker is there), each due is recorded as skipped with the
 *   restore named: a backup of the half-restored stack would count as good and push its undo out.
 * - `docker stop` (SIGTERM): idle, it exits at once; during a backup it records the interruption and exits.
 *   Its docker CLI children die with the container, the lock container with them, and restic writes a
 *   snapshot only once it is complete, so no half backup is left (the next lock holder clears leftovers).
 * - Alerts (`edms:alerts`): after each attempt and every 5 minutes it checks what is wrong (ops/alerts/) and
 *   tells the targets uploaded into its container; a check that fails is logged and never stops the loop, a
 *   check ends within 60 s (ALERT_CHECK_DEADLINE_MS), and the next due is taken before it, so none is lost.
 * - A missing backups volume is never created (a `docker run -v` would make an unlabelled one): each due is
 *   then logged as not taken, and recorded as such in schedule.jsonl as soon as the volume exists again (a
 *   `pulumi up` recreates it); `status` shows the volume missing meanwhile.
 */
import { scheduleEnabled, nextDue } from "../../model/schedule";
import { Settings } from "../../model/settings";
import { ALERT_CHECK_MS, checkAlerts } from "../alerts/check";
import { createBackup } from "../backup/create";
import { withSession } from "../engine/session";
import { describeIncompleteRestore, readMarker } from "../store/markers";
import { run, volumeExists } from "../engine/docker";
import { engineless } from "../engine/engineless";
import { startOffsiteCopy } from "../store/offsiteCopy";
import { STAGE_DIR } from "../store/restic";
import { EXIT, OpsError, refuse } from "../core/errors";
import { progress } from "../core/log";
import {
  appendScheduleRecord,
  catchUpDue,
  readScheduleRecords,
  RunOutcome,
  ScheduleRun,
} from "./records";

/** Longest single sleep: the wall clock is looked at again at least this often (suspend, clock steps). */
const MAX_SLEEP_MS = 60_000;
const SCHEDULER_LOCK_WAIT = "600";

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** The run in progress, so a stop can record it as interrupted. */
export interface RunningAttempt {
  readonly due: Date;
  readonly started: Date;
  readonly catchUp: boolean;
}

export interface SchedulerHooks {
  /** Aborted by SIGTERM/SIGINT: the loop ends once idle. */
  readonly signal: AbortSignal;
  /** Told when an attempt starts and ends (undefined), for the stop handler. */
  readonly onAttempt?: (attempt: RunningAttempt | undefined) => void;
  /** Clock, for tests. */
  readonly now?: () => Date;
  /** One alert check (default: ops/alerts/check.ts, a no-op without targets); must not throw. */
  readonly checkAlerts?: (now: Date) => Promise<unknown>;
}

/** Checks alerts now and then at most every ALERT_CHECK_MS; `due()` is cheap between checks. */
function alertTimer(settings: Settings, hooks: SchedulerHooks) {
  const now = hooks.now ?? (() => new Date());
  const check = hooks.checkAlerts ?? ((at: Date) => checkAlerts(settings, at));
  let last = -Infinity;
  const run = async () => {
    last = now().getTime();
    await check(now()).catch((err: Error) => progress(`alert check failed: ${err.message}`));
  };
  return {
    now: run,
    due: async () => {
      if (now().getTime() - last >= ALERT_CHECK_MS) {
        await run();
      }
    },
  };
}

function errorLine(err: unknown): string {
  const text = err instanceof OpsError ? err.describe() : String((err as Error)?.message ?? err);
  return text.replace(/\s*\n\s*/g, " | ").slice(0, 600);
}

/** Dues that found no backups volume, to record once it is back (there is nowhere to record them before). */
const notTaken: ScheduleRun[] = [];

function volumeMissing(settings: Settings, due: Date, at: Date, catchUp: boolean): ScheduleRun {
  return {
    kind: "run",
    schedule: settings.backup.schedule,
    due: due.toISOString(),
    started: at.toISOString(),
    finished: at.toISOString(),
    outcome: "failed",
    ok: false,
    catchUp,
    backup: null,
    snapshot: null,
    error: `not taken: the backups volume ${settings.names.backupsVolume} was missing (recorded once it existed again)`,
  };
}

interface Attempted {
  readonly outcome: RunOutcome;
  readonly backup: string | null;
  readonly snapshot: string | null;
  readonly error: string | null;
}

/**
 * The backup, holding the stack's lock; skipped while a restore is unfinished: a backup of its half-restored
 * state would count as good and push the restore's undo (the state before it) out of retention.
 */
async function attemptBackup(settings: Settings): Promise<Attempted> {
  const attempted = await backupUnderLock(settings);
  await clearStage();
  return attempted;
}

/**
 * Engineless, the dump is staged in this container's own layer (the lock container's went with it): it goes
 * after every attempt, at start (a scheduler killed mid-dump) and before a stop exits, never left in plain text.
 */
export async function clearStage(): Promise<void> {
  if (engineless()) {
    await run("sh", ["-c", 'rm -rf "$1"/* "$1"/.[!.]*', "sh", STAGE_DIR], { allowFailure: true });
  }
}

async function backupUnderLock(settings: Settings): Promise<Attempted> {
  try {
    return await withSession(settings, "backup --reason scheduled", async () => {
      const restore = await readMarker(settings, "restore");
      if (restore) {
        const error = `not taken while a restore is unfinished (no backup of a half-restored stack): ${describeIncompleteRestore(settings, restore)}`;
        return { outcome: "skipped", backup: null, snapshot: null, error };
      }
      const result = await createBackup(settings, { reason: "scheduled" });
      return {
        outcome: result ? "ok" : "nothing",
        backup: result?.entry.id ?? null,
        snapshot: result?.entry.snapshot ?? null,
        error: null,
      };
    });
  } catch (err) {
    const busy = err instanceof OpsError && err.exitCode === EXIT.busy;
    return {
      outcome: busy ? "skipped" : "failed",
      backup: null,
      snapshot: null,
      error: errorLine(err),
    };
  }
}

/** One scheduled backup: same code path as `edms-ops backup --reason scheduled`; the outcome is recorded. */
export async function scheduledBackup(
  settings: Settings,
  due: Date,
  catchUp: boolean,
  hooks: SchedulerHooks,
): Promise<ScheduleRun | null> {
  const now = hooks.now ?? (() => new Date());
  if (!(await volumeExists(settings.names.backupsVolume))) {
    progress(
      `scheduled backup due ${due.toISOString()} NOT taken: the backups volume ${settings.names.backupsVolume} is missing ` +
        `(recorded in schedule.jsonl once it exists again). \`pulumi up\` for ${settings.stack} creates it.`,
    );
    notTaken.push(volumeMissing(settings, due, now(), catchUp));
    return null;
  }
  // Dues that found no volume are written first, so the record says what was not taken and why.
  while (notTaken.length) {
    await appendScheduleRecord(settings, notTaken[0]);
    notTaken.shift();
  }
  const started = now();
  hooks.onAttempt?.({ due, started, catchUp });
  progress(`scheduled backup due ${due.toISOString()}${catchUp ? " (catch-up)" : ""}: starting`);
  const { outcome, backup, snapshot, error } = await attemptBackup(settings);
  hooks.onAttempt?.(undefined);
  const record: ScheduleRun = {
    kind: "run",
    schedule: settings.backup.schedule,
    due: due.toISOString(),
    started: started.toISOString(),
    finished: now().toISOString(),
    outcome,
    ok: outcome === "ok" || outcome === "nothing",
    catchUp,
    backup,
    snapshot,
    error,
  };
  await appendScheduleRecord(settings, record);
  progress(
    `scheduled backup due ${record.due}: ${outcome}${backup ? ` ${backup}` : ""}${error ? `: ${error}` : ""}`,
  );
  if (engineless() && outcome === "ok" && settings.backup.offsite) {
    // No engine to leave a copy running in the background: it runs here, after the lock is released and
    // the run recorded (a stop during the copy is no failed backup; offsite-copy.json says how it ended).
    await startOffsiteCopy(settings, "wait");
  }
  return record;
}

/** Records an attempt cut short by a stop; called from the signal handler before the process exits. */
export async function recordInterrupted(
  settings: Settings,
  attempt: RunningAttempt,
  signal: string,
): Promise<void> {
  await appendScheduleRecord(settings, {
    kind: "run",
    schedule: settings.backup.schedule,
    due: attempt.due.toISOString(),
    started: attempt.started.toISOString(),
    finished: new Date().toISOString(),
    outcome: "failed",
    ok: false,
    catchUp: attempt.catchUp,
    backup: null,
    snapshot: null,
    error:
      `interrupted: the scheduler was stopped (${signal}: docker stop, host shutdown or redeploy) while the backup ran or waited for the stack lock. ` +
      "restic writes a snapshot only once it is complete: it is either in `edms-ops backups list` or was not written.",
  });
}

/** Waits until the backups volume exists (saying so once), or the stop. */
async function waitForVolume(settings: Settings, hooks: SchedulerHooks): Promise<boolean> {
  let told = false;
  while (!hooks.signal.aborted) {
    if (await volumeExists(settings.names.backupsVolume)) {
      return true;
    }
    if (!told) {
      progress(
        `the backups volume ${settings.names.backupsVolume} is missing: no scheduled backup can be taken or recorded ` +
          `until \`pulumi up\` for ${settings.stack} creates it; checking every minute`,
      );
      told = true;
    }
    await sleep(MAX_SLEEP_MS, hooks.signal);
  }
  return false;
}

/** Runs until `hooks.signal` aborts. */
export async function runScheduler(settings: Settings, hooks: SchedulerHooks): Promise<void> {
  const schedule = settings.backup.schedule;
  if (!scheduleEnabled(schedule)) {
    throw refuse(
      `\`edms:backup.schedule\` is off for stack ${settings.stack}: there is nothing to schedule.`,
      "Set a cron expression, e.g. `pulumi config set --path edms:backup.schedule '0 3 * * *'`, and `pulumi up`.",
    );
  }
  process.env.EDMS_LOCK_WAIT ||= SCHEDULER_LOCK_WAIT;
  await clearStage();
  const now = hooks.now ?? (() => new Date());
  if (!(await waitForVolume(settings, hooks))) {
    return;
  }
  const started = now();
  const missed = catchUpDue(schedule, await readScheduleRecords(settings), started);
  await appendScheduleRecord(settings, {
    kind: "start",
    schedule,
    at: started.toISOString(),
    next: nextDue(schedule, started)?.toISOString() ?? null,
  });
  progress(
    `scheduler for ${settings.stack}: \`${schedule}\` (UTC), next ${nextDue(schedule, started)?.toISOString()}` +
      (missed ? `; the backup due ${missed.toISOString()} was missed, running it now` : ""),
  );
  const alerts = alertTimer(settings, hooks);
  if (missed) {
    await scheduledBackup(settings, missed, true, hooks);
  }
  // The next due is taken before the alert check: a due that passes while it runs is still run.
  let from = now();
  await alerts.now();
  while (!hooks.signal.aborted) {
    const due = nextDue(schedule, from);
    if (!due) {
      progress(`\`${schedule}\` fires no more: the scheduler stops`);
      return;
    }
    while (!hooks.signal.aborted && now() < due) {
      await sleep(Math.min(MAX_SLEEP_MS, due.getTime() - now().getTime()), hooks.signal);
      await alerts.due();
    }
    if (hooks.signal.aborted) {
      return;
    }
    // A run longer than the period skips the dues it overlapped: nextDue is taken after it ended.
    await scheduledBackup(settings, due, false, hooks);
    from = now();
    await alerts.now();
  }
}
