/**
 * Errors meant for the operator: what went wrong (`message`), what to do next (`fix`: a command to run, a
 * setting to change, or "retry"), and the exit code (2 for refusals, where nothing was changed; 1 for
 * failures). Every site names its fix; tests/unit/ops/errors.test.ts walks them all.
 */
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
    this.exitCode = problem.exitCode ?? 1;
  }

  /** As the operator reads it: the message, then the next step (on its own line after a multi-line message). */
  describe(): string {
    return `${this.message}${this.message.includes("\n") ? "\n" : " "}${this.fix}`;
  }
}

/** A refusal: a guard or an invalid request; nothing was changed. Exit 2. */
export function refuse(message: string, fix: string): OpsError {
  return new OpsError({ message, fix, exitCode: 2 });
}

/** A failure while working. Exit 1. */
export function failure(message: string, fix: string): OpsError {
  return new OpsError({ message, fix, exitCode: 1 });
}
