/**
 * Errors meant for the operator: what went wrong (`message`), what to do next (`fix`: a command to run, a
 * setting to change, or "retry"), and the exit code, a contract callers (deploy hooks, the scheduler, CI,
 * scripts) branch on instead of the message text. Every site names its fix; tests/unit/ops/errors.test.ts
 * walks them all.
 */

/** edms-ops' exit codes (README, "Exit codes"). */
export const EXIT = {
  /** Done. */
  done: 0,
  /** Failed while working; what changed is said in the message. */
  failed: 1,
  /** Refused (a guard, bad usage or input): nothing was changed. */
  refused: 2,
  /** Incomplete: part of the work is done; run the same command again (or the one named) to finish it. */
  incomplete: 3,
  /** The stack is busy: another operation holds its lock; nothing was changed, try again later. */
  busy: 75,
  /** The command stopped before it finished without saying why: a defect of edms-ops. */
  internal: 70,
} as const;
export interface OpsProblem {
  readonly message: string;
  readonly fix: string;
  readonly exitCode?: number;
}

export class OpsError extends Error {
  readonly fix: string;
  readonly exitCode: number;

  constructor(problem: OpsProblem) {
    super(problem.message);
    this.name = "OpsError";
    this.fix = problem.fix;
    this.exitCode = problem.exitCode ?? EXIT.failed;
  }

  /** As the operator reads it: the message, then the next step (on its own line after a multi-line message). */
  describe(): string {
    return `${this.message}${this.message.includes("\n") ? "\n" : " "}${this.fix}`;
  }
}

/** A refusal: a guard or an invalid request; nothing was changed. Exit 2. */
export function refuse(message: string, fix: string): OpsError {
  return new OpsError({ message, fix, exitCode: EXIT.refused });
}

/** A failure while working. Exit 1. */
export function failure(message: string, fix: string): OpsError {
  return new OpsError({ message, fix, exitCode: EXIT.failed });
}

/** Another operation holds the stack's lock; nothing was changed. Exit 75 (EX_TEMPFAIL: try again later). */
export function busy(message: string, fix: string): OpsError {
  return new OpsError({ message, fix, exitCode: EXIT.busy });
}

/** Part of the work is done and the rest is to be finished by running again (`fix` says what). Exit 3. */
export function incomplete(message: string, fix: string): OpsError {
  return new OpsError({ message, fix, exitCode: EXIT.incomplete });
}

/**
 * Like Promise.all, but waits for every promise before it answers (nothing is left running past a
 * failure) and throws the first rejection in the order given, whichever failed first: callers put the
 * one whose error matters most (a refusal) first.
 */
export async function allSettledOrThrow<T extends readonly unknown[]>(
  promises: readonly [...{ [K in keyof T]: Promise<T[K]> | T[K] }],
): Promise<T> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    throw failed.reason;
  }
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
