/**
 * Short-lived helper containers for work on the stack's volumes (writing backups, checksumming media).
 * They run the stack's own postgres image, which every host already has and which carries sh, tar,
 * sha256sum and the pg_* tools, as root with an explicit entrypoint so no image entrypoint interferes.
 */
import { Settings } from "../../components/config";
import { docker, RunOptions, RunResult } from "./docker";
import { RESTIC_PRELUDE } from "./restic";

export interface Mount {
  readonly volume: string;
  readonly path: string;
  readonly readOnly?: boolean;
}

export function backupsMount(settings: Settings, readOnly = false): Mount {
  return { volume: settings.names.backupsVolume, path: "/backups", readOnly };
}

export function mediaMount(settings: Settings, readOnly = true): Mount {
  return { volume: settings.names.mediaVolume, path: "/media", readOnly };
}

export function toolbox(
  settings: Settings,
  mounts: readonly Mount[],
  script: string,
  options: RunOptions = {},
): Promise<RunResult> {
  // Logging off: these containers stream dumps and archives, which must never land in a log driver.
  const args = ["run", "--rm", "-i", "--log-driver", "none", "--network", "none", "--user", "0"];
  args.push("--entrypoint", "sh");
  args.push("--label", `edms.stack=${settings.stack}`, "--label", "edms.role=ops");
  for (const mount of mounts) {
    args.push("-v", `${mount.volume}:${mount.path}${mount.readOnly ? ":ro" : ""}`);
  }
  args.push(settings.postgresImage, "-euc", script);
  return docker(args, options);
}

/** Quotes a value for the toolbox's `sh` (backup ids and app names are validated, this is the backstop). */
export function sh(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
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
  const args = ["run", "--rm", "-i", "--log-driver", "none", "--user", "0", "--entrypoint", "sh"];
  args.push("--network", options.network ? "bridge" : "none");
  args.push(
    "--label",
    `edms.stack=${settings.stack}`,
    "--label",
    `edms.role=${options.role ?? "ops"}`,
  );
  args.push("-v", `${settings.names.backupsVolume}:/backups${options.writable ? "" : ":ro"}`);
  for (const mount of options.mounts ?? []) {
    args.push("-v", `${mount.volume}:${mount.path}${mount.readOnly ? ":ro" : ""}`);
  }
  args.push(settings.backup.image, "-euc", `${RESTIC_PRELUDE}\n${script}`, "edms-ops");
  args.push(...(options.args ?? []));
  return docker(args, options);
}
