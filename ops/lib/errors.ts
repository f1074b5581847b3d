/** An error meant for the operator: the message says what went wrong and what to do next. */
export class OpsError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "OpsError";
  }
}

/** Refusals (production guards, missing confirmation) exit 2, failures 1. */
export const refuse = (message: string) => new OpsError(message, 2);
