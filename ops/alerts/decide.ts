/**
 * Which messages the conditions call for, given what was already said (alerts.json): one when a condition
 * starts (`firing`), a `reminder` at most once a day while it holds, one when it clears (`resolved`); nothing
 * while nothing changes, however often the scheduler looks. Pure, like evaluate.ts.
 */
import { Settings } from "../../model/settings";
import type { ActiveAlert, AlertMessage, AlertState } from "../store/records";
import { CONDITIONS, type Condition } from "./evaluate";
import { printable } from "../core/log";

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

/** A condition resolves only once this many checks in a row found it clear (no pair per flap). */
export const RESOLVE_AFTER_CHECKS = 2;
/** A condition resolved less than this long ago fires again only once it held this many checks in a row. */
export const REFIRE_QUIET_MS = 3_600_000;
export const REFIRE_AFTER_CHECKS = 2;

type Recent = NonNullable<AlertState["recent"]>;

function resolvedMessage(settings: Settings, key: string, open: ActiveAlert, now: Date) {
  return message(
    settings,
    {
      condition: key,
      state: "resolved",
      summary: `resolved: ${open.summary}`,
      detail: `held from ${open.since} until ${now.toISOString()}`,
      next: `nothing to do; edms-ops status --stack ${settings.stack} shows the state`,
    },
    now,
  );
}

/** A holding condition: fire (unless it resolved within the hour and has not held long enough), remind, or keep. */
function holding(
  settings: Settings,
  c: Condition,
  open: ActiveAlert | undefined,
  recent: Recent,
  now: Date,
): { alert: ActiveAlert | null; message: AlertMessage | null } {
  const at = now.toISOString();
  const fields = { condition: c.key, summary: c.summary, detail: c.detail, next: c.next };
  if (!open) {
    const quiet = recent[c.key];
    if (quiet && now.getTime() - Date.parse(quiet.resolvedAt) < REFIRE_QUIET_MS) {
      const firingChecks = quiet.firingChecks + 1;
      if (firingChecks < REFIRE_AFTER_CHECKS) {
        recent[c.key] = { ...quiet, firingChecks };
        return { alert: null, message: null };
      }
    }
    delete recent[c.key];
    const alert = { since: at, lastSent: at, summary: c.summary };
    return { alert, message: message(settings, { ...fields, state: "firing" }, now) };
  }
  const kept = { ...open }; // holding again: its clear checks start over
  delete kept.clearChecks;
  if (now.getTime() - Date.parse(open.lastSent) < REMINDER_MS) {
    return { alert: kept, message: null };
  }
  const detail = `${c.detail} (since ${open.since})`;
  return {
    alert: { ...kept, lastSent: at, summary: c.summary },
    message: message(settings, { ...fields, state: "reminder", detail }, now),
  };
}

/**
 * `evaluated`: the conditions the inputs told about (evaluate.ts: evaluatedKeys); an open alert of any other
 * keeps its state, since an input that could not be read is no recovery. Default: all of them.
 */
export function decide(
  settings: Settings,
  previous: AlertState,
  conditions: readonly Condition[],
  now: Date,
  evaluated: ReadonlySet<string> = new Set(CONDITIONS),
): Decision {
  const messages: AlertMessage[] = [];
  const active: Record<string, ActiveAlert> = {};
  const firing = new Set(conditions.map((c) => c.key as string));
  const recent: Recent = {};
  for (const [key, r] of Object.entries(previous.recent ?? {})) {
    if (now.getTime() - Date.parse(r.resolvedAt) < REFIRE_QUIET_MS) {
      const clear = evaluated.has(key) && !firing.has(key); // a re-fire must hold checks in a row
      recent[key] = { ...r, firingChecks: clear ? 0 : r.firingChecks };
    }
  }
  for (const c of conditions) {
    const h = holding(settings, c, previous.active[c.key], recent, now);
    if (h.alert) {
      active[c.key] = h.alert;
    }
    if (h.message) {
      messages.push(h.message);
    }
  }
  for (const [key, open] of Object.entries(previous.active)) {
    if (firing.has(key)) {
      continue;
    }
    const clearChecks = (open.clearChecks ?? 0) + (evaluated.has(key) ? 1 : 0);
    if (clearChecks < RESOLVE_AFTER_CHECKS) {
      active[key] = clearChecks ? { ...open, clearChecks } : open;
      continue;
    }
    messages.push(resolvedMessage(settings, key, open, now));
    recent[key] = { resolvedAt: now.toISOString(), firingChecks: 0 };
  }
  return { messages, state: { ...previous, active, recent, updatedAt: now.toISOString() } };
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
export function renderText(message: AlertMessage): { title: string; body: string } {
  const m = printableMessage(message);
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

/**
 * The message as every receiver gets it (apprise's text, the webhook's JSON): its summary, detail and next
 * step may quote names from outside (media files, database values), so no control character is left in
 * them, and the summary (a title) is one line.
 */
export function printableMessage(m: AlertMessage): AlertMessage {
  return {
    ...m,
    summary: printable(m.summary.replace(/\r?\n/g, " ")),
    detail: printable(m.detail),
    next: printable(m.next),
  };
}
