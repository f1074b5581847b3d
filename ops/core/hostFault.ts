/**
 * Failures of the host rather than of the data: a full filesystem, a disk quota, memory running out. A
 * test-restore (verify's, a drill's, a restore's side database) that stops on one of these says nothing about
 * the backup, and must not be reported as a damaged backup: an operator told so chooses an older backup (losing
 * what the newer one held) or repairs a sound repository.
 */
import { OpsError, EXIT } from "./errors";

/**
 * What PostgreSQL, pg_restore, restic, cp and the kernel print for them (C locale). Not among them: an I/O error
 * (on the repository's disk it may well be the backup's loss), a refused connection (a password, pg_hba), and
 * a server that went away (the data may have crashed it: see LOST_SERVER).
 */
const HOST_FAULTS: readonly RegExp[] = [
  /no space left on device/i,
  /disk quota exceeded/i,
  /read-only file system/i,
  /out of memory/i,
  /cannot allocate memory/i,
  /could not resize shared memory segment/i,
];

/** A server that went away under a client: the host's fault only when the server's own log says so. */
export const LOST_SERVER =
  /server closed the connection unexpectedly|terminating connection because of crash|the database system is (shutting down|starting up|in recovery mode)/i;

/**
 * Lines that echo data or statements rather than say what failed (a row of a failed COPY, a value, pg_restore's
 * `Command was:`): never read, so that a stored text that happens to say "out of memory" proves nothing.
 */
const ECHO = /(^|\s)(CONTEXT|DETAIL|STATEMENT|QUERY|HINT|LINE \d+):|Command was:/;

/** The first line of `text` that names a host fault (see HOST_FAULTS), trimmed; null when none does. */
export function hostFaultLine(text: string): string | null {
  for (const line of text.split("\n")) {
    if (!ECHO.test(line) && HOST_FAULTS.some((pattern) => pattern.test(line))) {
      return line.trim();
    }
  }
  return null;
}

/** What to do when a scratch server, its restore or the drill's scratch media ran out of room. */
export const FREE_SCRATCH_ROOM =
  "Free what it ran out of on the Docker host (disk space: `docker system df`, `df -h`, and `edms:backup.drillScratch` when set; memory), then run the same command again.";

/** A step stopped by the host (see hostFaultLine), not by the backup it was working on. Exit 1. */
export class HostFault extends OpsError {
  constructor(problem: { readonly message: string; readonly fix: string }) {
    super({ ...problem, exitCode: EXIT.failed });
    this.name = "HostFault";
  }
}

/** A failure the host caused (failure()'s contract: what happened, then what to free and run again). Exit 1. */
export function hostFailure(message: string, fix: string): HostFault {
  return new HostFault({ message, fix });
}
