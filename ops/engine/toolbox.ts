/**
 * Short-lived helper containers for work on the stack's volumes (writing backups, checksumming media).
 * They run the stack's own postgres image, which every host already has and which carries sh, tar,
 * sha256sum and the pg_* tools, as root with an explicit entrypoint so no image entrypoint interferes.
 */
import { Settings } from "../../model/settings";
import { docker, run, RunOptions, RunResult, volumeExists } from "./docker";
import { engineless, engineNeeded, mountedHere } from "./engineless";
import { dockerRunArgs, Mount, opsLabels } from "./dockerRun";
import { OPS_HELPER_ROLE, RESTIC_PRELUDE, STAGE_DIR } from "../store/restic";
import { BACKUPS_DIR, LAYOUT } from "../store/layout";
import { batchedRead, helperBatch } from "./readBatch";

export type { Mount } from "./dockerRun";

/**
 * Sets `$H` to the helper image's SHA-256 command: OpenSSL's where the image has it (the official Debian
 * postgres images do), which uses the CPU's SHA instructions (1.0 s of CPU for 1 GiB here against coreutils'
 * 2.5 s), else `sha256sum` (busybox). Both print the hex digest first; OpenSSL's `-r` puts a `*` before the name.
 */
export const SHA256_TOOL =
  'if openssl dgst -sha256 -r < /dev/null > /dev/null 2>&1; then H="openssl dgst -sha256 -r"; else H=sha256sum; fi';

/** The parent of the helpers' staging folders. */
const SCRATCH_ROOT = STAGE_DIR.replace(/\/[^/]+$/, "");

export function backupsMount(settings: Settings, readOnly = false): Mount {
  return { volume: settings.names.backupsVolume, path: BACKUPS_DIR, readOnly };
}

/**
 * What `script` prints when run over the backups volume mounted read-only, without the lock (status,
 * history, schedule records); "" when the volume is missing, which is never created by reading.
 */
export async function readBackupsVolume(
  settings: Settings,
  script: string,
  args: readonly string[] = [],
): Promise<string> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return "";
  }
  return (await quickRead(settings, script, args, false, args.length ? "edms-ops" : "sh")).stdout;
}

/**
 * A quick read (cat, ls, tail; no restic) of the backups volume mounted read-only. Every one of them, asked
 * by readBackupsVolume or as a quick backupToolbox read, runs in the same kind of container, so the reads a
 * command asks for at about the same time (the deploy's health gate and record, `status`) share one.
 */
function quickRead(
  settings: Settings,
  script: string,
  args: readonly string[],
  allowFailure: boolean,
  zero: string,
): Promise<RunResult> {
  const mounts = [backupsMount(settings, true)];
  if (engineless()) {
    return runHere(mounts, script, { args, allowFailure });
  }
  const most = helperBatch(settings.limits.helpers);
  return batchedRead(toolboxArgs(settings, mounts), { script, args, allowFailure, zero }, most);
}

/**
 * What the holder of a flock(2) in the backups volume wrote into it (the stack lock, the off-host copy's
 * lock), or null when nobody holds it (or the image has no flock to ask with). Asked with a shared lock:
 * two probes at once never see each other as the holder, only an exclusive one conflicts.
 */
export async function readHeldLock(settings: Settings, lock: string): Promise<string | null> {
  const text = await readBackupsVolume(
    settings,
    `[ -e "$1" ] && command -v flock >/dev/null || exit 0\n(exec 9<"$1"; flock -n -s 9) 2>/dev/null || { echo held; cat "$1"; }`,
    [lock],
  );
  const [first, ...rest] = text.split("\n");
  return first === "held" ? rest.join("\n").trim() : null;
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
  if (engineless()) {
    return runHere(mounts, script, options);
  }
  return docker(toolboxArgs(settings, mounts)(script, options.args ?? []), options);
}

/** `docker run` of a toolbox container over `mounts` running `sh -euc script edms-ops args…`. */
function toolboxArgs(settings: Settings, mounts: readonly Mount[]) {
  return (script: string, args: readonly string[]) =>
    // Logging off: these containers stream dumps and archives, which must never land in a log driver.
    dockerRunArgs({
      image: settings.postgresImage,
      args: ["-euc", script, ...(args.length ? ["edms-ops", ...args] : [])],
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
    /**
     * A read that ends at once (cat, ls; no restic): it runs as readBackupsVolume's reads do (the stack's
     * postgres image, no prelude) and may share a container with any of them asked at the same time. A slow
     * one (restic) never does, so that none of them waits for it.
     */
    readonly quick?: boolean;
  } = {},
): Promise<RunResult> {
  // A helper that writes the repository holds the writer lock: the scheduler, which cannot see containers,
  // waits for one a killed operation left running (an operator's next session removes it).
  const body = `${RESTIC_PRELUDE}\n${options.role === OPS_HELPER_ROLE ? WRITER_LOCK : ""}${script}`;
  const mounts = [
    { volume: settings.names.backupsVolume, path: BACKUPS_DIR, readOnly: !options.writable },
    ...(options.mounts ?? []),
  ];
  if (engineless()) {
    return runHere(mounts, body, options);
  }
  const argsOf = (script: string, args: readonly string[]) =>
    dockerRunArgs({
      image: settings.backup.image,
      args: ["-euc", script, "edms-ops", ...args],
      remove: true,
      stdin: true,
      logging: false,
      user: "0",
      entrypoint: "sh",
      network: options.network ? "bridge" : "none",
      labels: opsLabels(settings, options.role),
      mounts,
      // Where scripts stage a dump and media (/edms/database, /edms/media) with the root read-only: on
      // disk, not in memory, and removed with the container.
      scratchPaths: [SCRATCH_ROOT],
      limits: settings.limits.helpers,
    });
  if (options.quick && onlyReads(options)) {
    // No restic, so no prelude: the same container as readBackupsVolume's reads.
    return quickRead(settings, script, options.args ?? [], !!options.allowFailure, "edms-ops");
  }
  return docker(argsOf(body, options.args ?? []), options);
}

/** A read of the backups volume alone, with nothing streamed either way, may share a container. */
const READ_OPTIONS = new Set(["args", "allowFailure", "quick"]);

function onlyReads(options: object): boolean {
  return Object.entries(options).every(
    ([key, value]) => value === undefined || READ_OPTIONS.has(key),
  );
}

const WRITER_LOCK = `exec 8>>${LAYOUT.writerLock}\nflock 8\n`;

/**
 * Engineless (the scheduler): a toolbox's script runs here when every volume it mounts is mounted here at
 * the same path; anything else needs the engine.
 */
function runHere(
  mounts: readonly Mount[],
  script: string,
  options: RunOptions & { readonly args?: readonly string[] },
): Promise<RunResult> {
  if (!mountedHere(mounts)) {
    throw engineNeeded(`A helper container with ${mounts.map((m) => m.volume).join(", ")}`);
  }
  return run("sh", ["-euc", script, "edms-ops", ...(options.args ?? [])], options);
}
