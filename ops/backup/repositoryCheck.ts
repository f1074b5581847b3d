/**
 * `restic check` of the local repository, recorded as the last repository check (what `edms-ops evidence`
 * reports). It depends on no snapshot, so `restore` and `verify` start it beside their lookup of the backup
 * (besideCheck), which is a restic start of its own: each pays the key's scrypt, ~0.5 s of CPU, and on two
 * cores the two run side by side instead of one after the other.
 */
import { lastLine } from "../core/log";
import { OpsSession } from "../engine/session";
import { LAYOUT } from "../store/layout";
import type { RepositoryCheck } from "../store/records";

export const LAST_CHECK_FILE = LAYOUT.lastCheck;

/** Each session's check started ahead, with the verification it was started for. */
const ahead = new WeakMap<OpsSession, { during: string; problems: Promise<string[]> }>();

/**
 * `lookUp()` (the backup's lookup in the listing) with the check that `verify ${id}` will report started
 * beside it. A lookup that fails waits for the check (its record is never cut short by the session's end);
 * one that succeeds leaves it to the verification, which takes it at once.
 */
export async function besideCheck<T>(
  session: OpsSession,
  id: string,
  lookUp: () => Promise<T>,
): Promise<T> {
  const during = `verify ${id}`;
  const problems = checkRepository(session, during);
  ahead.set(session, { during, problems });
  try {
    return await lookUp();
  } catch (err) {
    ahead.delete(session);
    await problems.catch(() => undefined);
    throw err;
  }
}

/**
 * The problems of the check for `during`: the one started ahead for it (taken once: a later verification in
 * the session checks again), or one started now.
 */
export function repositoryProblems(session: OpsSession, during: string): Promise<string[]> {
  const started = ahead.get(session);
  ahead.delete(session);
  return started?.during === during ? started.problems : checkRepository(session, during);
}

async function checkRepository(session: OpsSession, during: string): Promise<string[]> {
  // Without restic's exclusive lock, so the reads beside it proceed: the session holds the stack's lock, and
  // nothing writes to the local repository outside it (copies off the host only read it).
  // Its time is the host's as it begins, asked beside it.
  const [check, checkedAt] = await Promise.all([
    session.exec("lrestic check --no-lock >/dev/null", [], { allowFailure: true }),
    session.hostTime(),
  ]);
  const record: RepositoryCheck = {
    checkedAt,
    ok: check.code === 0,
    detail: check.code === 0 ? "no errors were found" : lastLine(check.stderr),
    during,
  };
  await session.exec(`cat > ${LAST_CHECK_FILE}`, [], { input: JSON.stringify(record) });
  return check.code === 0 ? [] : [`restic check: ${lastLine(check.stderr)}`];
}
