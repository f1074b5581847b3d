/**
 * Which messages the conditions call for, given what was already said (alerts.json): one when a condition
 * starts (`firing`), a `reminder` at most once a day while it holds, one when it clears (`resolved`); nothing
 * while nothing changes, however often the scheduler looks. Pure, like evaluate.ts.
 */
import { Settings } from "../../model/settings";
import type { ActiveAlert, AlertMessage, AlertState } from "../store/records";
import type { Condition } from "./evaluate";

/** A condition that holds is told again after this long (and never sooner). */
export const REMINDER_MS = 24 * 3_600_000;

export function emptyAlertState(targets: string[] = []): AlertState {
  return { format: 1, active: {}, targets, lastAlert: null };
}

export interface Decision {
  readonly messages: AlertMessage[];
  /** The state once every message is delivered (see `undelivered` for the others). */
  readonly state: AlertState;
}

function message(
  settings: Settings,
  fields: Pick<AlertMessage, "condition" | "state" | "summary" | "detail" | "next">,
  now: Date,
): AlertMessage {
  return {
    stack: settings.stack,
    environment: settings.environment,
    ...fields,
    at: now.toISOString(),
  };
}

export function decide(
  settings: Settings,
  previous: AlertState,
  conditions: readonly Condition[],
  now: Date,
): Decision {
  const messages: AlertMessage[] = [];
  const active: Record<string, ActiveAlert> = {};
  const at = now.toISOString();
  for (const c of conditions) {
    const open = previous.active[c.key];
    const fields = { condition: c.key, summary: c.summary, detail: c.detail, next: c.next };
    if (!open) {
      messages.push(message(settings, { ...fields, state: "firing" }, now));
      active[c.key] = { since: at, lastSent: at, summary: c.summary };
    } else if (now.getTime() - Date.parse(open.lastSent) >= REMINDER_MS) {
      messages.push(
        message(
          settings,
          { ...fields, state: "reminder", detail: `${c.detail} (since ${open.since})` },
          now,
        ),
      );
      active[c.key] = { ...open, lastSent: at, summary: c.summary };
    } else {
      active[c.key] = open;
    }
  }
  const holding = new Set(conditions.map((c) => c.key as string));
  for (const [key, open] of Object.entries(previous.active)) {
    if (!holding.has(key)) {
      messages.push(
        message(
          settings,
          {
            condition: key,
            state: "resolved",
            summary: `resolved: ${open.summary}`,
            detail: `held from ${open.since} until ${at}`,
            next: `nothing to do; edms-ops status --stack ${settings.stack} shows the state`,
          },
          now,
        ),
      );
    }
  }
  return { messages, state: { ...previous, active } };
}

/**
 * The state after some messages reached no target: their conditions go back to what they were, so the next
 * check sends them again (a firing nobody received is no firing; a resolution likewise).
 */
export function undelivered(
  previous: AlertState,
  decided: AlertState,
  failed: readonly AlertMessage[],
): AlertState {
  const active = { ...decided.active };
  for (const m of failed) {
    const before = previous.active[m.condition];
    if (before) {
      active[m.condition] = before;
    } else {
      delete active[m.condition];
    }
  }
  return { ...decided, active };
}

/** The title and body Apprise sends (e-mail subject and text, chat message). */
export function renderText(m: AlertMessage): { title: string; body: string } {
  const label = { firing: "ALERT", reminder: "STILL FAILING", resolved: "RESOLVED", test: "TEST" }[
    m.state
  ];
  return {
    title: `[edms ${m.stack}] ${label}: ${m.summary}`,
    body:
      `Stack ${m.stack} (${m.environment}), condition ${m.condition}, ${m.state} at ${m.at}\n\n` +
      `${m.detail}\n\nNext: ${m.next}\n`,
  };
}
