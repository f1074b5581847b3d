/**
 * The one builder of `docker run` / `docker create` argv: edms-ops' helper containers (toolbox, restic, the
 * lock holder, scratch servers, one-off Django) and the tests' own. Secrets never go in here: they reach
 * containers as files (`docker cp`) or on stdin.
 */
import { DEFAULT_LIMITS } from "../../model/config/limits";
import {
  Confinement,
  CONFINEMENT,
  LOG_DRIVER,
  LOG_OPTS,
  SECURITY_OPTS,
  TMPFS_OPTIONS,
} from "../../model/hardening";
import { LABELS } from "../../model/labels";
import { Settings } from "../../model/settings";

export interface Mount {
  /** A volume name or an absolute host path. */
  readonly volume: string;
  readonly path: string;
  readonly readOnly?: boolean;
  /** Labels a named volume gets when this run creates it (`--mount …,volume-label=`), so it can be found. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface ContainerSpec {
  readonly image: string;
  /** What follows the image: the command, or the entrypoint's arguments. */
  readonly args?: readonly string[];
  readonly name?: string;
  /** `-d`: start it and return its id. */
  readonly detach?: boolean;
  /** `--rm`. */
  readonly remove?: boolean;
  /** `-i`: stdin stays open (scripts and data piped in). */
  readonly stdin?: boolean;
  readonly user?: string;
  readonly entrypoint?: string;
  /** "none", "bridge", a network name, or `container:<name>` (that container's network namespace). */
  readonly network?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** `NAME=value` pairs; never a secret (docker inspect shows them). */
  readonly env?: readonly string[];
  readonly mounts?: readonly Mount[];
  /** Anonymous volumes (`-v /path`), removed with the container. */
  readonly scratchPaths?: readonly string[];
  /** false: `--log-driver none`, for containers that stream dumps and archives; else rotated json-file. */
  readonly logging?: boolean;
  /**
   * Capabilities added back and tmpfs paths (model/hardening.ts); default: the root helpers'. Every
   * container also gets no-new-privileges and `--cap-drop ALL`.
   */
  readonly confinement?: Confinement;
  /** `edms:limits.helpers` of the stack; default: its default. */
  readonly limits?: { readonly memoryMb: number; readonly pids: number };
}

export function dockerRunArgs(spec: ContainerSpec, verb: "run" | "create" = "run"): string[] {
  const args: string[] = [verb];
  const flag = (on: boolean | undefined, ...words: string[]) => on && args.push(...words);
  flag(spec.detach, "-d");
  flag(spec.stdin, "-i");
  flag(spec.remove, "--rm");
  flag(spec.name !== undefined, "--name", spec.name!);
  if (spec.logging === false) {
    args.push("--log-driver", "none");
  } else {
    args.push("--log-driver", LOG_DRIVER);
    for (const [option, value] of Object.entries(LOG_OPTS)) {
      args.push("--log-opt", `${option}=${value}`);
    }
  }
  args.push(...confinementArgs(spec));
  flag(spec.network !== undefined, "--network", spec.network!);
  flag(spec.user !== undefined, "--user", spec.user!);
  flag(spec.entrypoint !== undefined, "--entrypoint", spec.entrypoint!);
  for (const [label, value] of Object.entries(spec.labels ?? {})) {
    args.push("--label", `${label}=${value}`);
  }
  for (const env of spec.env ?? []) {
    args.push("-e", env);
  }
  for (const mount of spec.mounts ?? []) {
    args.push(...mountArgs(mount));
  }
  for (const path of spec.scratchPaths ?? []) {
    args.push("-v", path);
  }
  args.push(spec.image, ...(spec.args ?? []));
  return args;
}

function mountArgs(mount: Mount): string[] {
  if (!mount.labels) {
    return ["-v", `${mount.volume}:${mount.path}${mount.readOnly ? ":ro" : ""}`];
  }
  const labels = Object.entries(mount.labels).map(([k, v]) => `,volume-label=${k}=${v}`);
  const readOnly = mount.readOnly ? ",readonly" : "";
  return [
    "--mount",
    `type=volume,src=${mount.volume},dst=${mount.path}${readOnly}${labels.join("")}`,
  ];
}

function confinementArgs(spec: ContainerSpec): string[] {
  const { capabilities, tmpfs, readOnly } = spec.confinement ?? CONFINEMENT.helpers;
  const { memoryMb, pids } = spec.limits ?? DEFAULT_LIMITS.helpers;
  return [
    ...SECURITY_OPTS.flatMap((option) => ["--security-opt", option]),
    "--cap-drop",
    "ALL",
    ...capabilities.flatMap((capability) => ["--cap-add", capability]),
    ...(readOnly ? ["--read-only"] : []),
    ...tmpfs.flatMap((path) => ["--tmpfs", `${path}:${TMPFS_OPTIONS}`]),
    // Swap included: a helper over its limit is killed, never slowed to a crawl.
    `--memory=${memoryMb}m`,
    `--memory-swap=${memoryMb}m`,
    `--pids-limit=${pids}`,
  ];
}

/** Labels of a container edms-ops starts for a stack: found (and cleaned up) by stack and role. */
export function opsLabels(settings: Settings, role = "ops"): Record<string, string> {
  return { [LABELS.stack]: settings.stack, [LABELS.role]: role };
}
