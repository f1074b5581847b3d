/**
 * `restic check` of the local repository, recorded as the last repository check (what `edms-ops evidence`
 * reports). It depends on no snapshot, so `restore` and `verify` start it beside their lookup of the backup
 * (besideCheck), which is a restic start of its own: each pays the key's scrypt, ~0.5 s of CPU, and on two
 * cores the two run side by side instead of one after the other. Only a verification that takes the check
 * records it: a lookup that is refused (an unknown id, no key) records nothing and does not wait for it.
 */
import { lastLine } from "../core/log";
import { OpsSession } from "../engine/session";
import type { RunResult } from "../engine/docker";
import { LAYOUT } from "../store/layout";
import { markerScript } from "../store/markers";
import type { RepositoryCheck } from "../store/records";

export const LAST_CHECK_FILE = LAYOUT.lastCheck;

interface Checked {
  readonly check: RunResult;
  /** The host's time as the check began. */
  readonly checkedAt: string;
}

/** Each session's check started ahead, with the verification it was started for. */
const ahead = new WeakMap<OpsSession, { during: string; checked: Promise<Checked> }>();

/**
 * `lookUp()` (the backup's lookup in the listing) with the check that `verify ${id}` will report started
 * beside it. A lookup that fails leaves the check to the session's end, which stops it: nothing recorded.
 */
export async function besideCheck<T>(
  session: OpsSession,
  id: string,
  lookUp: () => Promise<T>,
): Promise<T> {
  const checked = runCheck(session);
  // Never an unhandled rejection, whoever takes it (or nobody: the lookup failed).
  checked.catch(() => undefined);
  ahead.set(session, { during: `verify ${id}`, checked });
  try {
    return await lookUp();
  } catch (err) {
    ahead.delete(session);
    throw err;
  }
}

/**
 * The problems of the check for `during`, recorded: the one started ahead for it (taken once: a later
 * verification in the session checks again), or one started now.
 */
export async function repositoryProblems(session: OpsSession, during: string): Promise<string[]> {
  const started = ahead.get(session);
  ahead.delete(session);
  const { check, checkedAt } = await (started?.during === during
    ? started.checked
    : runCheck(session));
  const record: RepositoryCheck = {
    checkedAt,
    ok: check.code === 0,
    detail: check.code === 0 ? "no errors were found" : lastLine(check.stderr),
    during,
  };
  // Whole or not at all: a verification cut short beside it (its session ended) never empties the record.
  await session.exec(markerScript(), [LAST_CHECK_FILE], { input: JSON.stringify(record) });
  return check.code === 0 ? [] : [`restic check: ${lastLine(check.stderr)}`];
}

/**
 * Without restic's exclusive lock, so the reads beside it proceed: the session holds the stack's lock, and
 * nothing writes to the local repository outside it (copies off the host only read it). Its time is the
 * host's as it begins, asked beside it.
 */
async function runCheck(session: OpsSession): Promise<Checked> {
  const [check, checkedAt] = await Promise.all([
    session.exec("lrestic check --no-lock >/dev/null", [], { allowFailure: true }),
    session.hostTime(),
  ]);
  return { check, checkedAt };
}
