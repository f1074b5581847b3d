/**
 * Short-lived helper containers for work on the stack's volumes (writing backups, checksumming media).
 * They run the stack's own postgres image, which every host already has and which carries sh, tar,
 * sha256sum and the pg_* tools, as root with an explicit entrypoint so no image entrypoint interferes.
 */
import { Settings } from "../../components/config";
import { docker, RunOptions, RunResult } from "./docker";

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
  const args = ["run", "--rm", "-i", "--network", "none", "--user", "0", "--entrypoint", "sh"];
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
