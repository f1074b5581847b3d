/**
 * `--restic-host` of `backups prune --offsite` and `backups forget --offsite`: the Docker engine that runs the
 * one restic container holding the delete credentials. By default the stack's host; the trusted machine's own
 * engine keeps those credentials off the stack's host altogether.
 */
import { refuse } from "../../core/errors";

export const RESTIC_HOST_FLAG = "--restic-host <docker-host>";

export const RESTIC_HOST_HELP =
  "with --offsite: the Docker engine that runs restic with the delete credentials (default: the stack's host), e.g. unix:///var/run/docker.sock on this trusted machine, so that they never reach the stack's host";

/** `--restic-host` means nothing without `--offsite`: refused before anything runs. */
export function requireOffsiteFor(opts: { offsite?: boolean; resticHost?: string }): void {
  if (opts.resticHost !== undefined && !opts.offsite) {
    throw refuse(
      "--restic-host goes with --offsite (it names where restic runs with the off-host delete credentials). Nothing was changed.",
      "Run it again with `--offsite`, or without `--restic-host`.",
    );
  }
  if (
    opts.resticHost !== undefined &&
    !/^(unix|tcp|ssh|npipe):\/\/[^\s-]\S*$/.test(opts.resticHost)
  ) {
    throw refuse(
      `--restic-host ${JSON.stringify(opts.resticHost)} is not a Docker host address. Nothing was changed.`,
      "Pass one as DOCKER_HOST takes it: `unix:///var/run/docker.sock`, `ssh://user@host` or `tcp://host:2376`.",
    );
  }
}
