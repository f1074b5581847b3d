/**
 * One alert check, as the scheduler runs it after each attempt and every few minutes: read what evaluate()
 * needs from the backups volume, decide() against alerts.json, send, and write alerts.json back when
 * something was sent. It never throws: a check that cannot read or send is logged, recorded in alerts.json
 * (the delivery's error, redacted) where possible, and retried at the next check.
 */
import { randomBytes } from "crypto";
import { Settings } from "../../model/settings";
import { drillResults, readLatestDrill } from "../backup/drill";
import { parseJsonOrNull } from "../core/json";
import { progress, warn } from "../core/log";
import { backupsMount, readBackupsVolume, toolbox } from "../engine/toolbox";
import { newestGood } from "../reports/health";
import { readScheduleRecords, scheduleState } from "../schedule/records";
import { listBackups } from "../store/catalog";
import { LAYOUT } from "../store/layout";
import { readMarker } from "../store/markers";
import { offsiteLag } from "../store/offsite";
import { AlertMessage, AlertState, AlertStateSchema } from "../store/records";
import { decide, emptyAlertState, undelivered } from "./decide";
import { AlertInputs, assess } from "./evaluate";
import { AlertTargets, describeTargets, hasTargets, readTargets, sendAlert } from "./send";

/** How often the scheduler checks between its dues. */
export const ALERT_CHECK_MS = 5 * 60_000;
/** A whole check (reads, off-host listing, sends) ends by then: a later result is dropped, unsent. */
export const ALERT_CHECK_DEADLINE_MS = 60_000;

/**
 * The last state this process decided, per stack: used when alerts.json is missing, torn, or older (a full
 * volume refused the write), so a condition already told is not told again at every check.
 */
const decidedInProcess = new Map<string, AlertState>();

/** The newer of the stored state and the one this process kept (a state without updatedAt is the older). */
export function newerState(stored: AlertState | null, kept: AlertState | undefined) {
  if (!kept || (stored && (stored.updatedAt ?? "") >= (kept.updatedAt ?? ""))) {
    return stored;
  }
  return kept;
}

/** Runs `work` with a deadline: at `ms` the signal aborts and null is returned (work may still settle). */
export async function withDeadline<T>(
  work: (signal: AbortSignal) => Promise<T>,
  ms: number,
): Promise<T | null> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve(null);
    }, ms);
  });
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

export async function readAlertState(settings: Settings): Promise<AlertState | null> {
  const text = await readBackupsVolume(settings, `cat ${LAYOUT.alerts} 2>/dev/null || true`);
  return parseJsonOrNull(text, AlertStateSchema);
}

/** A temporary name of this writer's own: the scheduler and `alerts test` never share one. */
export function alertTempName(file: string = LAYOUT.alerts): string {
  return `${file}.new.${process.pid}.${randomBytes(4).toString("hex")}`;
}

/** Written whole or not at all (renamed into place); a failure is logged, never thrown. */
async function writeAlertState(settings: Settings, state: AlertState): Promise<void> {
  const file = LAYOUT.alerts;
  const tmp = alertTempName(file);
  await toolbox(
    settings,
    [backupsMount(settings)],
    `cat > ${tmp} && sync && mv ${tmp} ${file} || { rm -f ${tmp}; exit 1; }`,
    { input: JSON.stringify(state, null, 2) },
  ).catch((err: Error) =>
    warn(`alerts.json not written (the next check retries): ${err.message.split("\n")[0]}`),
  );
}

/** Each input read on its own: one that cannot be read is null and raises nothing. */
async function gatherInputs(settings: Settings, now: Date): Promise<AlertInputs> {
  const unread: ("drill" | "restore")[] = [];
  const quietly = <T>(p: Promise<T>, name?: "drill" | "restore"): Promise<T | null> =>
    p.catch(() => {
      if (name) {
        unread.push(name);
      }
      return null;
    });
  const [records, listing, drills, drill, restore] = await Promise.all([
    quietly(readScheduleRecords(settings)),
    quietly(listBackups(settings, { legacy: false })),
    quietly(drillResults(settings)),
    quietly(readLatestDrill(settings), "drill"),
    quietly(readMarker(settings, "restore"), "restore"),
  ]);
  const local = listing?.complete ?? null;
  return {
    schedule: records ? scheduleState(settings.backup.schedule, records, now) : null,
    firstStart: records?.find((r) => r.kind === "start")?.at ?? null,
    local,
    offsite: local ? await quietly(offsiteLag(settings, local)) : null,
    drill,
    restore,
    freshness: local && drills ? newestGood(local, drills, now.getTime()) : null,
    unread,
  };
}

/** Sends each message, and returns the state to keep: undelivered messages are sent again next time. */
async function deliver(
  targets: AlertTargets,
  previous: AlertState,
  decided: AlertState,
  messages: readonly AlertMessage[],
): Promise<AlertState> {
  const failed: AlertMessage[] = [];
  let state = decided;
  for (const m of messages) {
    const deliveries = await sendAlert(targets, m);
    const reached = deliveries.filter((d) => d.ok).length;
    progress(
      `alert ${m.state} ${m.condition}: ${reached}/${deliveries.length} target(s) reached` +
        deliveries
          .filter((d) => !d.ok)
          .map((d) => `; ${d.target}: ${d.error}`)
          .join(""),
    );
    if (reached === 0) {
      failed.push(m);
    }
    state = { ...state, lastAlert: { message: m, deliveries } };
  }
  return undelivered(previous, state, failed);
}

/** What alerts.json holds that decides the next check (not when, nor the last message). */
const decisive = (s: AlertState | null) =>
  JSON.stringify(s ? [s.active, s.recent ?? {}, s.targets] : null);

async function checkOnce(
  settings: Settings,
  now: Date,
  targets: AlertTargets,
  signal: AbortSignal,
): Promise<AlertMessage[]> {
  const stored = await readAlertState(settings).catch(() => null);
  const base = newerState(stored, decidedInProcess.get(settings.stack)) ?? emptyAlertState();
  const previous = { ...base, targets: describeTargets(targets) };
  const { conditions, evaluated } = assess(settings, await gatherInputs(settings, now), now);
  if (signal.aborted) {
    return [];
  }
  const { messages, state } = decide(settings, previous, conditions, now, evaluated);
  const kept = messages.length ? await deliver(targets, previous, state, messages) : state;
  decidedInProcess.set(settings.stack, kept);
  if (messages.length || decisive(stored) !== decisive(kept)) {
    await writeAlertState(settings, kept); // also: evidence shows the targets the host has now
  }
  return messages;
}

/** One check, within ALERT_CHECK_DEADLINE_MS. Never throws; the messages it tried to send are returned. */
export async function checkAlerts(
  settings: Settings,
  now: Date = new Date(),
  targets: AlertTargets = readTargets(),
  deadlineMs: number = ALERT_CHECK_DEADLINE_MS,
): Promise<AlertMessage[]> {
  if (!hasTargets(targets)) {
    return [];
  }
  try {
    const messages = await withDeadline(
      (signal) => checkOnce(settings, now, targets, signal),
      deadlineMs,
    );
    if (messages === null) {
      warn(
        `alert check took longer than ${deadlineMs / 1000} s (an input or a target did not answer): ` +
          "its result is dropped and the next check runs as usual",
      );
    }
    return messages ?? [];
  } catch (err) {
    warn(
      `alert check failed (retried at the next check): ${(err as Error).message.split("\n")[0]}`,
    );
    return [];
  }
}

/** A test message to every target, recorded as the last alert; the deliveries, redacted. */
export async function sendTestAlert(settings: Settings, targets: AlertTargets = readTargets()) {
  const message: AlertMessage = {
    stack: settings.stack,
    environment: settings.environment,
    condition: "test",
    state: "test",
    summary: `test message from the scheduler of ${settings.stack}`,
    detail: `sent by \`edms-ops alerts test\` from ${settings.names.schedulerContainer} on the Docker host`,
    next: "nothing to do: this target receives the alerts of this stack",
    at: new Date().toISOString(),
  };
  const deliveries = await sendAlert(targets, message);
  const previous = (await readAlertState(settings).catch(() => null)) ?? emptyAlertState();
  await writeAlertState(settings, {
    ...previous,
    targets: describeTargets(targets),
    lastAlert: { message, deliveries },
  });
  return { message, deliveries };
}
