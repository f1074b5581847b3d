/**
 * Failures of the host rather than of the data: a full or read-only filesystem, memory running out, the
 * server going away under a restore. A test-restore (verify's, a drill's, a restore's side database) that
 * stops on one of these says nothing about the backup, and must not be reported as a damaged backup: an
 * operator told so chooses an older backup (losing what the newer one held) or repairs a sound repository.
 */
import { OpsError, EXIT } from "./errors";

/**
 * What PostgreSQL, libpq, restic and the kernel print for them (C locale). An I/O error is not among them:
 * on the repository's disk it may well be the backup's loss.
 */
const HOST_FAULTS: readonly RegExp[] = [
  /no space left on device/i,
  /disk quota exceeded/i,
  /check free disk space/i,
  /read-only file system/i,
  /out of memory/i,
  /cannot allocate memory/i,
  /could not resize shared memory segment/i,
  /server closed the connection unexpectedly/i,
  /terminating connection due to (administrator command|crash of another server process)/i,
  /the database system is (shutting down|starting up|in recovery mode|not yet accepting connections)/i,
  /too many clients already/i,
  /could not connect to server/i,
  /connection to server .* failed/i,
];

/** The first line of `text` that names a host fault, trimmed; null when none does. */
export function hostFaultLine(text: string): string | null {
  for (const line of text.split("\n")) {
    if (HOST_FAULTS.some((pattern) => pattern.test(line))) {
      return line.trim();
    }
  }
  return null;
}

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
