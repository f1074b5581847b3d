/**
 * One alert check, as the scheduler runs it after each attempt and every few minutes: read what evaluate()
 * needs from the backups volume, decide() against alerts.json, send, and write alerts.json back when
 * something was sent. It never throws: a check that cannot read or send is logged, recorded in alerts.json
 * (the delivery's error, redacted) where possible, and retried at the next check.
 */
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
import { AlertInputs, evaluate } from "./evaluate";
import { AlertTargets, describeTargets, hasTargets, readTargets, sendAlert } from "./send";

/** How often the scheduler checks between its dues. */
export const ALERT_CHECK_MS = 5 * 60_000;

export async function readAlertState(settings: Settings): Promise<AlertState | null> {
  const text = await readBackupsVolume(settings, `cat ${LAYOUT.alerts} 2>/dev/null || true`);
  return parseJsonOrNull(text, AlertStateSchema);
}

/** Written whole or not at all (renamed into place); a failure is logged, never thrown. */
async function writeAlertState(settings: Settings, state: AlertState): Promise<void> {
  const file = LAYOUT.alerts;
  await toolbox(
    settings,
    [backupsMount(settings)],
    `cat > ${file}.new && sync && mv ${file}.new ${file}`,
    { input: JSON.stringify(state, null, 2) },
  ).catch((err: Error) =>
    warn(`alerts.json not written (the next check retries): ${err.message.split("\n")[0]}`),
  );
}

/** Each input read on its own: one that cannot be read is null and raises nothing. */
async function gatherInputs(settings: Settings, now: Date): Promise<AlertInputs> {
  const quietly = <T>(p: Promise<T>): Promise<T | null> => p.catch(() => null);
  const [records, listing, drills, drill, restore] = await Promise.all([
    quietly(readScheduleRecords(settings)),
    quietly(listBackups(settings)),
    quietly(drillResults(settings)),
    quietly(readLatestDrill(settings)),
    quietly(readMarker(settings, "restore")),
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

/** One check. Never throws; the messages it tried to send are returned (tests, `--json`). */
export async function checkAlerts(
  settings: Settings,
  now: Date = new Date(),
  targets: AlertTargets = readTargets(),
): Promise<AlertMessage[]> {
  if (!hasTargets(targets)) {
    return [];
  }
  try {
    const stored = await readAlertState(settings);
    const previous = { ...(stored ?? emptyAlertState()), targets: describeTargets(targets) };
    const conditions = evaluate(settings, await gatherInputs(settings, now), now);
    const { messages, state } = decide(settings, previous, conditions, now);
    if (messages.length) {
      await writeAlertState(settings, await deliver(targets, previous, state, messages));
    } else if (JSON.stringify(stored?.targets) !== JSON.stringify(previous.targets)) {
      await writeAlertState(settings, state); // evidence shows the targets the host has now
    }
    return messages;
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
