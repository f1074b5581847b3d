/**
 * The stack's operation lock, shared by edms-ops and the scheduler (which has no engine socket):
 *
 * - flock(2) on LAYOUT.stackLock in the backups volume is **the** lock. The kernel releases it however its
 *   holder ends, and it works across containers on the one host that holds the volume. edms-ops takes it
 *   in its lock container (`<prefix>-ops`, LOCK_SCRIPT under `docker run`), the scheduler in its own
 *   container (the same script, run there): each waits for the other up to EDMS_LOCK_WAIT.
 * - The lock container's unique name still orders edms-ops processes among themselves (a clear "held by"
 *   from its labels, and its stdin ties the lock to the process, however it dies).
 * - The holder writes who it is into the lock file, so whoever waits can name it, and `status` can ask a
 *   read-only toolbox whether the flock is held when no lock container runs.
 * - The lock container also flocks its stage folder for its whole life: the dump's client, which writes
 *   plaintext there, ends as soon as it could take that lock (its holder gone), whatever its stdin says.
 */
import { ChildProcessWithoutNullStreams, spawn } from "child_process";
import * as os from "os";
import { DEFAULT_BACKUP_IMAGE } from "../../model/config/backup";
import { Settings } from "../../model/settings";
import { ContainerInspectSchema, docker } from "./docker";
import { dockerRunArgs, opsLabels } from "./dockerRun";
import { engineless } from "./engineless";
import { readHeldLock } from "./toolbox";
import { busy, failure, OpsError, refuse } from "../core/errors";
import { progress } from "../core/log";
import { parseJson } from "../core/json";
import { MEDIA_DIR, STAGE_DIR, STAGE_ROLE, stageVolume } from "../store/restic";
import { BACKUPS_DIR, LAYOUT } from "../store/layout";
const DEFAULT_LOCK_WAIT_SECONDS = 120;

function lockWaitSeconds(): number {
  const raw = process.env.EDMS_LOCK_WAIT;
  if (raw === undefined || raw === "") {
    return DEFAULT_LOCK_WAIT_SECONDS;
  }
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw refuse(
      `EDMS_LOCK_WAIT must be a number of seconds ≥ 0 (got \`${raw}\`). Nothing was changed.`,
      "Set e.g. EDMS_LOCK_WAIT=300, or unset it for the default (120).",
    );
  }
  return seconds;
}

/** Marks the lock script's refusals on stderr: the stack lock is held (by the scheduler), or no flock. */
const LOCK_HELD = "edms-lock-held: ";
const NO_FLOCK = "edms-no-flock";
/** The start of the lock script's one line on stdout once the lock is held. */
const HELD = "held: ";

/**
 * Takes the stack's lock as flock(2) on LAYOUT.stackLock and holds it while `cat` reads the holder's
 * stdin: released by the kernel however the holder ends. The stage folder is flocked for as long, for the
 * dump's client (dump.ts) to end with the holder; one it cannot lock (a dying client's instant) is a
 * refusal. $1 says who holds it (written into the file for whoever waits); $2 non-empty: also wait for no
 * helper to hold the writer lock (the scheduler, which cannot remove a killed operation's helpers as an
 * operator's session does). Once held it prints one line, `held: ` and the first line of `restic version`
 * (empty without a restic, or one that does not answer in 10 s): the session checks the image's restic from
 * it, where an exec of its own cost each operation 0.13-0.2 s and ~0.2 s of the host's CPU.
 */
export const LOCK_SCRIPT = `command -v flock >/dev/null || { echo "${NO_FLOCK}" >&2; exit 69; }
exec 9>>${LAYOUT.stackLock}
# Once more a second later: \`status\` probes the flock with a shared flock -n, held for an instant.
flock -n 9 || { sleep 1; flock -n 9; } || { echo "${LOCK_HELD}$(cat ${LAYOUT.stackLock})" >&2; exit 75; }
if [ -n "$2" ]; then
  exec 8>>${LAYOUT.writerLock}
  flock -n 8 || { echo "${LOCK_HELD}a helper container of a stopped edms-ops operation, still writing" >&2; exit 75; }
  exec 8>&-
fi
printf '%s\n' "$1" > ${LAYOUT.stackLock}
# Bounded and off the holder's stdin: a restic that hangs must not keep the lock past its holder's end. Nor
# the lock's fd: busybox's timeout leaves a watcher behind for up to a second, which would hold it that long.
if command -v timeout >/dev/null; then v=$(timeout 10 restic version </dev/null 2>/dev/null 9>&-) || v=
else v=$(restic version </dev/null 2>/dev/null 9>&-) || v=; fi
# The stage folder itself, locked for as long as this holder lives: a dump client (CLIENT_SCRIPT) ends once it
# can take that lock, even when its own stdin's end never reaches it, so it must be held before any client
# starts. Once more a second later, past a dying client's instant of it. After restic's version, out of its
# watcher's reach.
if [ -d ${STAGE_DIR} ]; then
  exec 7<${STAGE_DIR}
  flock -n 7 || { sleep 1; flock -n 7; } || { echo "${LOCK_HELD}a dump client of a stopped edms-ops operation, ending" >&2; exit 75; }
fi
printf '${HELD}%s\n' "\${v%%
*}"
cat >/dev/null
# The holder is gone, however it ended: the stage (a dump is plaintext data) is emptied before the lock goes.
rm -rf ${STAGE_DIR}/* 2>/dev/null || true`;

function lockHolderText(operation: string): string {
  return engineless()
    ? `the scheduler's \`${operation}\` (${os.hostname()}), since ${new Date().toISOString()}`
    : `\`${operation}\` (edms-ops ${os.hostname()}:${process.pid}), since ${new Date().toISOString()}`;
}

/** The lock script run here (engineless: the scheduler), the volumes being mounted already. */
export function localLockArgs(operation: string): string[] {
  return ["-c", LOCK_SCRIPT, "edms-ops", lockHolderText(operation), "writer"];
}

/** The lock container: the backup image idling on `cat`, with the volumes every operation works on. */
export function lockContainerArgs(
  settings: Settings,
  operation: string,
  hasMedia: boolean,
): string[] {
  const n = settings.names;
  return dockerRunArgs({
    image: settings.backup.image,
    args: ["-c", LOCK_SCRIPT, "edms-ops", lockHolderText(operation), ""],
    name: `${settings.namePrefix}-ops`,
    stdin: true,
    remove: true,
    logging: false,
    network: settings.backup.offsite ? "bridge" : "none",
    user: "0",
    entrypoint: "sh",
    labels: {
      ...opsLabels(settings),
      "edms.operation": operation,
      "edms.holder": `${os.hostname()}:${process.pid}`,
    },
    mounts: [
      { volume: n.backupsVolume, path: BACKUPS_DIR },
      ...(hasMedia ? [{ volume: n.mediaVolume, path: MEDIA_DIR }] : []),
      {
        volume: stageVolume(settings.namePrefix),
        path: STAGE_DIR,
        labels: opsLabels(settings, STAGE_ROLE),
      },
    ],
    limits: settings.limits.helpers,
  });
}

/**
 * Takes the lock, waiting up to EDMS_LOCK_WAIT seconds while another holds it: another edms-ops (its lock
 * container has the name) or the scheduler (it holds the flock). A lock container that was created but never
 * started is removed once it is old enough to be nobody's.
 */
export async function acquireLock(
  settings: Settings,
  name: string,
  command: { readonly command: string; readonly args: readonly string[] },
): Promise<HeldLock> {
  const wait = lockWaitSeconds() * 1000;
  const deadline = Date.now() + wait;
  let told = false;
  for (;;) {
    const attempt = await startLockHolder(command.command, command.args);
    if (attempt.child) {
      return { child: attempt.child, restic: attempt.restic ?? "" };
    }
    const holder = await heldBy(settings, name, attempt.stderr);
    if (holder === "stale" && Date.now() < deadline) {
      continue;
    }
    if (Date.now() >= deadline) {
      throw busy(
        `Stack ${settings.stack} is busy: ${holder} holds its operation lock. Nothing was changed.`,
        `Retry when it has finished (\`edms-ops status --stack ${settings.stack}\` shows it), ` +
          "or wait longer with EDMS_LOCK_WAIT=<seconds>.",
      );
    }
    if (!told) {
      progress(`waiting for ${holder} to finish (up to ${wait / 1000}s)`);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Who holds the lock a start was refused for; "stale": a never-started lock container, now removed. */
async function heldBy(settings: Settings, name: string, stderr: string): Promise<string> {
  const flockHolder = stderr.split("\n").find((line) => line.startsWith(LOCK_HELD));
  if (flockHolder !== undefined) {
    return flockHolder.slice(LOCK_HELD.length).trim() || "another operation";
  }
  if (stderr.includes(NO_FLOCK)) {
    throw refuse(
      `The backup image ${settings.backup.image} (\`edms:backup.image\`) has no \`flock\`, which the stack lock shared with the scheduler needs. Nothing was changed.`,
      `Set \`edms:backup.image\` to ${DEFAULT_BACKUP_IMAGE} (the default: busybox's flock) or an image with util-linux, then run \`pulumi up --stack ${settings.stack}\`.`,
    );
  }
  if (engineless() || !/already in use|Conflict/i.test(stderr)) {
    throw lockStartFailed(settings, name, stderr);
  }
  const holder = await lockHolder(name);
  if (holder && ["created", "exited", "dead"].includes(holder.status) && holder.ageSeconds > 60) {
    // Created but never started (its `docker run` died in between): nobody holds it. A young one may
    // be another process's lock on its way up (over ssh that takes a while), so it is left alone, and
    // `docker rm` without -f never removes a running one.
    const removed = await docker(["rm", holder.id], { allowFailure: true });
    if (removed.code === 0) {
      return "stale";
    }
    // Not removable (a dead container whose filesystem the engine cannot free): waited on like a holder,
    // once a second, not retried in a tight loop.
    return `${describeHolder(holder)} (a stale lock container Docker could not remove: ${removed.stderr.trim().split("\n").pop()})`;
  }
  return describeHolder(holder);
}

function lockStartFailed(settings: Settings, name: string, stderr: string): OpsError {
  return /Unable to find image|No such image|pull access denied|manifest unknown/i.test(stderr)
    ? failure(
        `The backup image ${settings.backup.image} is not on the Docker host and could not be pulled.`,
        "Load or pull it there, or set `edms:backup.image` to an image with restic. Nothing was changed.",
      )
    : failure(
        `Could not start the backup container ${name}: ${stderr.trim().split("\n").pop()}`,
        "Fix the cause Docker names, then retry. Nothing was changed.",
      );
}

interface LockAttempt {
  readonly child?: ChildProcessWithoutNullStreams;
  /** The first line of `restic version` in the lock's image ("" without a restic), once held. */
  readonly restic?: string;
  readonly stderr: string;
}

/** The lock holder's process, and what `restic version` said in its image. */
export interface HeldLock {
  readonly child: ChildProcessWithoutNullStreams;
  readonly restic: string;
}

/** Starts the lock holder; resolves once it printed its line (held) or exited (not held). */
export function startLockHolder(command: string, args: readonly string[]): Promise<LockAttempt> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    let settled = false;
    child.stdin.on("error", () => undefined);
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? failure(`\`${command}\` is not installed or not on PATH.`, "Install it and retry.")
          : error,
      ),
    );
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const held = (data: Buffer) => {
      stdout += data.toString("utf8");
      const end = stdout.indexOf("\n");
      if (end >= 0 && !settled) {
        settled = true;
        child.stdout.off("data", held);
        child.stdout.resume(); // nothing more is printed; never left to fill the pipe
        const line = stdout.slice(0, end);
        resolve({
          child,
          stderr: "",
          restic: line.startsWith(HELD) ? line.slice(HELD.length) : "",
        });
      }
    };
    child.stdout.on("data", held);
    child.on("close", () => {
      if (!settled) {
        settled = true;
        resolve({ stderr });
      }
    });
  });
}

interface Holder {
  readonly id: string;
  readonly running: boolean;
  readonly status: string;
  readonly ageSeconds: number;
  readonly operation: string;
  readonly holder: string;
  readonly since: string;
}

async function lockHolder(name: string): Promise<Holder | undefined> {
  const result = await docker(["container", "inspect", name], { allowFailure: true });
  if (result.code !== 0) {
    return undefined;
  }
  const [info] = parseJson(result.stdout, ContainerInspectSchema, `docker inspect ${name}`);
  return {
    id: info.Id,
    running: info.State.Running === true,
    status: info.State.Status,
    ageSeconds: (Date.now() - Date.parse(info.Created)) / 1000,
    operation: info.Config.Labels?.["edms.operation"] ?? "an operation",
    holder: info.Config.Labels?.["edms.holder"] ?? "?",
    since: info.State.StartedAt ?? info.Created,
  };
}

function describeHolder(holder: Holder | undefined): string {
  return holder
    ? `\`${holder.operation}\` (edms-ops ${holder.holder}, since ${holder.since.replace(/\.\d+Z$/, "Z")})`
    : "another operation";
}

/** The operation holding the stack's lock now, if any (for `status`). */
export async function currentOperation(settings: Settings): Promise<string | null> {
  // No lock container: the scheduler may hold the flock itself. Read beside the container's inspection (with
  // the other quick reads of status and health, in their container), used only when no container holds it.
  const held = readHeldLock(settings, LAYOUT.stackLock);
  held.catch(() => undefined);
  const holder = await lockHolder(`${settings.namePrefix}-ops`);
  if (holder?.running) {
    return describeHolder(holder);
  }
  return held;
}
