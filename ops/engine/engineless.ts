/**
 * edms-ops without a Docker engine: how the scheduler container runs, which has no engine socket (issue 20:
 * no container holds the keys to the host). It has what a scheduled backup needs and nothing more: the
 * backups volume, the media volume read-only, the stack's data network, the backup role's pgpass file
 * (model/containers.ts BACKUP_DB_PASSFILE), and the tools of the lock container
 * (sh, restic, flock) with the postgres client of the server's own major. The program sets, never a secret:
 *
 *   EDMS_ENGINE=none
 *   EDMS_MOUNTS   {"<volume>": {"path": "/backups", "readOnly": false}, ...}: what is mounted here, and where
 *
 * Here, what elsewhere runs in a container of the engine runs in this process's container instead: the
 * session's scripts, a toolbox whose every volume is mounted here at the same path (and writable here
 * where it asks to write), and psql/pg_dump over the data network as the backup role. Anything else
 * (stopping a container, a scratch server) fails with `engineNeeded`, never silently.
 */
import { z } from "zod";
import { failure, OpsError } from "../core/errors";
import { parseJson } from "../core/json";
import type { Mount } from "./dockerRun";
import type { LocalMounts } from "../../model/containers";

export function engineless(): boolean {
  return process.env.EDMS_ENGINE === "none";
}

const MountsSchema = z.record(
  z.string(),
  z.object({ path: z.string(), readOnly: z.boolean().optional() }),
);

/** The volumes mounted in this container (EDMS_MOUNTS), by volume name. */
export function localMounts(): LocalMounts {
  const raw = process.env.EDMS_MOUNTS;
  return raw ? parseJson(raw, MountsSchema, "EDMS_MOUNTS") : {};
}

/** True when every mount is a volume mounted here at the same path, writable here where it must be. */
export function mountedHere(mounts: readonly Mount[], here: LocalMounts = localMounts()): boolean {
  return mounts.every((mount) => {
    const local = here[mount.volume];
    return local !== undefined && local.path === mount.path && (mount.readOnly || !local.readOnly);
  });
}

/** A volume exists for this container when it is mounted here. */
export function volumeMountedHere(name: string): boolean {
  return localMounts()[name] !== undefined;
}

/** What a step that needs the engine says here. */
export function engineNeeded(what: string): OpsError {
  return failure(
    `${what} needs the Docker engine, and this container (the scheduler) has no engine socket by design.`,
    "Run it with edms-ops from a machine that reaches the Docker host (`docker:host`).",
  );
}
