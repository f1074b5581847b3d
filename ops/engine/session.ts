/**
 * The stack's operation lock and backup workspace in one: a container named `<prefix>-ops`, run from the
 * backup image with the backups volume, the media volume and a scratch volume for the database dump.
 *
 * - Docker container names are unique, so creating it is an atomic "take the lock" on the Docker host,
 *   whoever runs edms-ops and from wherever (`docker:host` may be ssh://).
 * - It runs `cat` on the stdin of the `docker run` that edms-ops holds open. When edms-ops ends, in any
 *   way (exit, exception, SIGKILL, lost ssh connection), that stdin closes, the container exits and
 *   `--rm` removes it, and every process exec'd into it dies with it: the lock cannot outlive its holder,
 *   and no restic keeps writing for a dead operation.
 * - Its first line is the Docker host's clock: backup ids and retention follow the host, not the laptop.
 * - While we hold it, restic's own locks in the local repository are leftovers by definition (restic
 *   judges staleness by hostname+PID, which throwaway containers make meaningless), so they are cleared.
 */
import { ChildProcessWithoutNullStreams, spawn } from "child_process";
import * as os from "os";
import { DEFAULT_BACKUP_IMAGE, MINIMUM_RESTIC, olderThanMinimum } from "../../model/config/backup";
import { Settings } from "../../model/settings";
import {
  ContainerInspectSchema,
  docker,
  removeByRole,
  RunOptions,
  RunResult,
  volumeExists,
} from "./docker";
import { dockerRunArgs, opsLabels } from "./dockerRun";
import { busy, failure, OpsError, refuse } from "../core/errors";
import { POSTGRES_DB, POSTGRES_USER } from "../../model/containers";
import { storeKeysFromEnv } from "../store/keys";
import { dropSideDatabasesSql } from "../database/postgres";
import { progress } from "../core/log";
import {
  DUMP_APPLICATION,
  MEDIA_DIR,
  OPS_HELPER_ROLE,
  REPOSITORY,
  RESTIC_PRELUDE,
  resticVersion,
  STAGE_DIR,
} from "../store/restic";
import { BACKUPS_DIR, SCRATCH } from "../store/layout";
import { parseJson } from "../core/json";

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

export class OpsSession {
  /** Backup ids this operation is using (its target, its new backup): retention never forgets them. */
  readonly pinned = new Set<string>();

  private constructor(
    readonly settings: Settings,
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
    readonly hasMedia: boolean,
  ) {}

  /** Runs a shell script (with the restic prelude) inside the session container. */
  exec(script: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
    return docker(
      ["exec", "-i", this.name, "sh", "-euc", `${RESTIC_PRELUDE}\n${script}`, "edms-ops", ...args],
      options,
    );
  }

  /** The Docker host's clock now, as an ISO string. */
  async hostTime(): Promise<string> {
    return (await this.exec("date -u +%Y-%m-%dT%H:%M:%SZ")).stdout.trim();
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        resolve();
      } else {
        this.child.once("close", () => resolve());
      }
    });
    this.child.stdin.end();
    await closed;
  }

  static async open(
    settings: Settings,
    operation: string,
    options: SessionOptions = {},
  ): Promise<OpsSession> {
    const n = settings.names;
    if (!(await volumeExists(n.backupsVolume))) {
      throw failure(
        `Backups volume ${n.backupsVolume} is missing.`,
        `Run \`pulumi up\` for ${settings.stack} to create it.`,
      );
    }
    // Only an existing media volume is mounted: `docker run -v` would otherwise create an unlabelled one.
    const hasMedia = options.media !== false && (await volumeExists(n.mediaVolume));
    const name = `${settings.namePrefix}-ops`;
    const child = await acquireLock(
      settings,
      name,
      lockContainerArgs(settings, operation, hasMedia),
    );
    const session = new OpsSession(settings, name, child, hasMedia);
    // A session that fails to start lets go of the lock: its container would otherwise keep this
    // process (and the stack's lock) alive for good.
    try {
      await session.requireRestic();
      await session.clearLeftovers();
    } catch (err) {
      await session.close();
      throw err;
    }
    return session;
  }

  /** Refuses, before anything is touched, a backup image whose restic is older than edms-ops supports. */
  private async requireRestic(): Promise<void> {
    const found = await this.exec("restic version", [], { allowFailure: true });
    const version = resticVersion(found.stdout);
    if (found.code === 0 && !olderThanMinimum(version)) {
      return;
    }
    throw refuse(
      `The backup image ${this.settings.backup.image} (\`edms:backup.image\`) runs ${found.code === 0 ? `restic ${version.join(".")}` : "no restic"}; edms-ops needs restic ${MINIMUM_RESTIC.join(".")} or newer. Nothing was changed.`,
      `Set \`edms:backup.image\` to ${DEFAULT_BACKUP_IMAGE} (the default) or newer, then run \`pulumi up --stack ${this.settings.stack}\`.`,
    );
  }

  /**
   * What killed operations leave: helper containers still writing (they go first, before their restic
   * locks), a pg_dump still holding its snapshot, restic locks, scratch repositories, first-release partial
   * backups.
   */
  private async clearLeftovers(): Promise<void> {
    const { settings } = this;
    await removeByRole(settings.stack, OPS_HELPER_ROLE);
    // Trust-auth scratch servers of a killed verify, and one-off Django containers a killed command left
    // (they hold copies of the secret files): only sessions make the former; the latter only once exited,
    // as a deploy's migrate may be running one right now.
    await removeByRole(settings.stack, "scratch-db");
    await removeByRole(settings.stack, "ops", "exited");
    await docker(
      [
        "exec",
        "-i",
        settings.names.postgresContainer,
        "psql",
        "-U",
        POSTGRES_USER,
        "-d",
        POSTGRES_DB,
        "-Xq",
      ],
      {
        // Orphaned dumps, and the side databases of a killed restore (its pg_restore may still be running).
        input: `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${DUMP_APPLICATION}';\n${dropSideDatabasesSql()}`,
        allowFailure: true,
      },
    );
    await this.exec(
      `rm -rf ${SCRATCH.leftovers.join(" ")}; ` +
        // No `find -delete`: busybox builds without it (Debian's) exist; `-exec rm {} +` works in every find.
        `[ ! -d ${REPOSITORY}/locks ] || find ${REPOSITORY}/locks -type f -exec rm -f {} +`,
    );
  }
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
    args: ["-c", "date -u +%s && exec cat >/dev/null"],
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
    ],
    scratchPaths: [STAGE_DIR],
    limits: settings.limits.helpers,
  });
}

/**
 * Starts the lock container, waiting up to EDMS_LOCK_WAIT seconds while another process holds it; a lock
 * container that was created but never started is removed once it is old enough to be nobody's.
 */
async function acquireLock(
  settings: Settings,
  name: string,
  args: readonly string[],
): Promise<ChildProcessWithoutNullStreams> {
  const wait = lockWaitSeconds() * 1000;
  const deadline = Date.now() + wait;
  let told = false;
  for (;;) {
    const attempt = await startLockContainer(args);
    if (attempt.child) {
      return attempt.child;
    }
    if (!/already in use|Conflict/i.test(attempt.stderr)) {
      throw lockStartFailed(settings, name, attempt.stderr);
    }
    const holder = await lockHolder(name);
    if (holder && holder.status !== "running" && holder.ageSeconds > 60) {
      // Created but never started (its `docker run` died in between): nobody holds it. A young one may
      // be another process's lock on its way up (over ssh that takes a while), so it is left alone, and
      // `docker rm` without -f never removes a running one.
      await docker(["rm", holder.id], { allowFailure: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw busy(
        `Stack ${settings.stack} is busy: ${describeHolder(holder)} holds its operation lock. Nothing was changed.`,
        `Retry when it has finished (\`edms-ops status --stack ${settings.stack}\` shows it), ` +
          "or wait longer with EDMS_LOCK_WAIT=<seconds>.",
      );
    }
    if (!told) {
      progress(`waiting for ${describeHolder(holder)} to finish (up to ${wait / 1000}s)`);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
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
  readonly stderr: string;
}

/** Starts the lock container; resolves once it printed its first line (held) or exited (not held). */
function startLockContainer(args: readonly string[]): Promise<LockAttempt> {
  return new Promise((resolve, reject) => {
    const child = spawn("docker", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    let settled = false;
    child.stdin.on("error", () => undefined);
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? failure("`docker` is not installed or not on PATH.", "Install it and retry.")
          : error,
      ),
    );
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.stdout.once("data", () => {
      settled = true;
      resolve({ child, stderr: "" });
    });
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

/** Sessions held by this process, so a restore's undo backup reuses the restore's lock. */
const held = new Map<string, { session: OpsSession; depth: number }>();

/**
 * Runs `fn` holding the stack's operation lock. Nested calls in one process share it. A second
 * process waits up to EDMS_LOCK_WAIT seconds (default 120), then is refused with the holder named.
 */
export interface SessionOptions {
  /** false: hold the lock without mounting the media volume (an operation that removes it). */
  readonly media?: boolean;
}

export async function withSession<T>(
  settings: Settings,
  operation: string,
  fn: (session: OpsSession) => Promise<T>,
  options: SessionOptions = {},
): Promise<T> {
  const existing = held.get(settings.stack);
  if (existing) {
    existing.depth += 1;
    try {
      return await fn(existing.session);
    } finally {
      existing.depth -= 1;
    }
  }
  await storeKeysFromEnv(settings);
  const session = await OpsSession.open(settings, operation, options);
  held.set(settings.stack, { session, depth: 1 });
  try {
    return await fn(session);
  } finally {
    held.delete(settings.stack);
    await session.close();
  }
}

/** True inside `withSession` of this stack in this process (a backup taken by a restore, say). */
export function holdsLock(settings: Settings): boolean {
  return held.has(settings.stack);
}

/** The operation holding the stack's lock now, if any (for `status`). */
export async function currentOperation(settings: Settings): Promise<string | null> {
  const holder = await lockHolder(`${settings.namePrefix}-ops`);
  return holder?.running ? describeHolder(holder) : null;
}
