/** Cleanup that must not be skipped when edms-ops is ended by a signal while it holds something. */
import * as os from "os";

const SIGNALS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * Until the returned function is called: SIGINT, SIGTERM or SIGHUP (Ctrl-C, `docker stop`, a dropped ssh
 * session), which would end edms-ops at once, first runs `cleanup`, then exits with 128 + the signal's number.
 * Once per signal: a second one ends the process as it would have.
 */
export function cleanupOnSignal(cleanup: (signal: NodeJS.Signals) => Promise<void>): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    void cleanup(signal).finally(() => process.exit(128 + (os.constants.signals[signal] ?? 1)));
  };
  SIGNALS.forEach((s) => process.once(s, onSignal));
  return () => SIGNALS.forEach((s) => process.removeListener(s, onSignal));
}
