/**
 * Short-lived helper containers for work on the stack's volumes (writing backups, checksumming media).
 * They run the stack's own postgres image, which every host already has and which carries sh, tar,
 * sha256sum and the pg_* tools, as root with an explicit entrypoint so no image entrypoint interferes.
 */
import { Settings } from "../../model/settings";
import { docker, RunOptions, RunResult, volumeExists } from "./docker";
import { dockerRunArgs, Mount, opsLabels } from "./dockerRun";
import { RESTIC_PRELUDE, STAGE_DIR } from "../store/restic";
import { BACKUPS_DIR } from "../store/layout";

export type { Mount } from "./dockerRun";

/** The parent of the helpers' staging folders. */
const SCRATCH_ROOT = STAGE_DIR.replace(/\/[^/]+$/, "");

export function backupsMount(settings: Settings, readOnly = false): Mount {
  return { volume: settings.names.backupsVolume, path: BACKUPS_DIR, readOnly };
}

/**
 * What `script` prints when run over the backups volume mounted read-only, without the lock (status,
 * history, schedule records); "" when the volume is missing, which is never created by reading.
 */
export async function readBackupsVolume(settings: Settings, script: string): Promise<string> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return "";
  }
  return (await toolbox(settings, [backupsMount(settings, true)], script)).stdout;
}

export function mediaMount(settings: Settings, readOnly = true): Mount {
  return { volume: settings.names.mediaVolume, path: "/media", readOnly };
}

export function toolbox(
  settings: Settings,
  mounts: readonly Mount[],
  script: string,
  options: RunOptions & {
    /** Positional parameters of the script ($1 …): values never spliced into its text. */
    readonly args?: readonly string[];
  } = {},
): Promise<RunResult> {
  // Logging off: these containers stream dumps and archives, which must never land in a log driver.
  const args = dockerRunArgs({
    image: settings.postgresImage,
    args: ["-euc", script, ...(options.args?.length ? ["edms-ops", ...options.args] : [])],
    remove: true,
    stdin: true,
    logging: false,
    network: "none",
    user: "0",
    entrypoint: "sh",
    labels: opsLabels(settings),
    mounts,
    limits: settings.limits.helpers,
  });
  return docker(args, options);
}

/**
 * A one-off container of the backup image (restic) with the backups volume at /backups, read-only unless
 * asked; the script starts with the restic prelude. For work outside the stack lock (listing) and for
 * writing the keys.
 */
export function backupToolbox(
  settings: Settings,
  script: string,
  options: RunOptions & {
    readonly writable?: boolean;
    readonly network?: boolean;
    /** Positional parameters of the script ($1 …): values never spliced into its text. */
    readonly args?: readonly string[];
    /** `edms.role` label; helpers that write to the repository are removed by the next lock holder. */
    readonly role?: string;
    /** More volumes (a drill's scratch space). */
    readonly mounts?: readonly Mount[];
  } = {},
): Promise<RunResult> {
  const args = dockerRunArgs({
    image: settings.backup.image,
    args: ["-euc", `${RESTIC_PRELUDE}\n${script}`, "edms-ops", ...(options.args ?? [])],
    remove: true,
    stdin: true,
    logging: false,
    user: "0",
    entrypoint: "sh",
    network: options.network ? "bridge" : "none",
    labels: opsLabels(settings, options.role),
    mounts: [
      { volume: settings.names.backupsVolume, path: BACKUPS_DIR, readOnly: !options.writable },
      ...(options.mounts ?? []),
    ],
    // Where scripts stage a dump and media (/edms/database, /edms/media) with the root read-only: on disk,
    // not in memory, and removed with the container.
    scratchPaths: [SCRATCH_ROOT],
    limits: settings.limits.helpers,
  });
  return docker(args, options);
}
