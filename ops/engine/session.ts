/**
 * The stack's operation lock and backup workspace in one: a container named `<prefix>-ops`, run from the
 * backup image with the backups volume, the media volume and the stage volume for the database dump
 * (engineless, the scheduler's own container: see lock.ts for the lock both take).
 *
 * - Docker container names are unique, so creating it is an atomic "take the lock" among edms-ops
 *   processes on the Docker host, whoever runs them and from wherever (`docker:host` may be ssh://).
 * - It runs `cat` on the stdin of the `docker run` that edms-ops holds open. When edms-ops ends, in any
 *   way (exit, exception, SIGKILL, lost ssh connection), that stdin closes, the container exits and
 *   `--rm` removes it, and every process exec'd into it dies with it: the lock cannot outlive its holder,
 *   and no restic keeps writing for a dead operation.
 * - Its one line, once it holds the lock, names the restic its image runs: an image older than the minimum
 *   is refused before anything is touched. Backup ids and retention follow the host's clock (`hostTime`).
 * - While we hold it, restic's own locks in the local repository are leftovers by definition (restic
 *   judges staleness by hostname+PID, which throwaway containers make meaningless), so they are cleared.
 */
import { ChildProcessWithoutNullStreams } from "child_process";
import { DEFAULT_BACKUP_IMAGE, MINIMUM_RESTIC, olderThanMinimum } from "../../model/config/backup";
import { Settings } from "../../model/settings";
import {
  docker,
  removeByRole,
  removeStaleCreated,
  run,
  RunOptions,
  RunResult,
  volumeExists,
} from "./docker";
import { engineless } from "./engineless";
import { acquireLock, localLockArgs, lockContainerArgs } from "./lock";
import { allSettledOrThrow, OpsError, refuse } from "../core/errors";
import { storeKeysFromEnv } from "../store/keys";
import { dropSideDatabasesSql, psql, stackServer } from "../database/postgres";
import {
  DUMP_APPLICATION,
  OPS_HELPER_ROLE,
  REPOSITORY,
  RESTIC_PRELUDE,
  resticVersion,
  STAGE_DIR,
  stageVolume,
} from "../store/restic";
import { SCRATCH } from "../store/layout";

export class OpsSession {
  /** Backup ids this operation is using (its target, its new backup): retention never forgets them. */
  readonly pinned = new Set<string>();

  private constructor(
    readonly settings: Settings,
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
    readonly hasMedia: boolean,
  ) {}

  /** Runs a shell script (with the restic prelude) inside the session container (engineless: here). */
  exec(script: string, args: readonly string[] = [], options: RunOptions = {}): Promise<RunResult> {
    const argv = ["sh", "-euc", `${RESTIC_PRELUDE}\n${script}`, "edms-ops", ...args];
    return engineless()
      ? run(argv[0], argv.slice(1), options)
      : docker(["exec", "-i", this.name, ...argv], options);
  }

  /** The Docker host's clock now, as an ISO string. */
  async hostTime(): Promise<string> {
    return (await this.exec("date -u +%Y-%m-%dT%H:%M:%SZ")).stdout.trim();
  }

  async close(): Promise<void> {
    if (!engineless() && this.child.exitCode === null) {
      // Helpers are started under the lock only: one still running is this operation's, cut short by an
      // error elsewhere (a dump client still writing plaintext data into the stage). They end with it.
      await removeByRole(this.settings.stack, OPS_HELPER_ROLE).catch(() => undefined);
    }
    const closed = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        resolve();
      } else {
        this.child.once("close", () => resolve());
      }
    });
    this.child.stdin.end();
    await closed;
    if (!engineless()) {
      // The stage held a plaintext dump. In use (a killed run's dump client still writing) it stays, and the
      // next session empties it.
      await docker(["volume", "rm", stageVolume(this.settings.namePrefix)], { allowFailure: true });
    }
  }

  static async open(
    settings: Settings,
    operation: string,
    options: SessionOptions = {},
  ): Promise<OpsSession> {
    const n = settings.names;
    // Only an existing media volume is mounted: `docker run -v` would otherwise create an unlabelled one.
    const [hasBackups, hasMedia] = await Promise.all([
      volumeExists(n.backupsVolume),
      options.media !== false && volumeExists(n.mediaVolume),
    ]);
    if (!hasBackups) {
      throw refuse(
        `Backups volume ${n.backupsVolume} is missing; nothing was changed.`,
        `Run \`pulumi up\` for ${settings.stack} to create it.`,
      );
    }
    const name = `${settings.namePrefix}-ops`;
    const { child, restic } = await acquireLock(
      settings,
      name,
      engineless()
        ? { command: "sh", args: localLockArgs(operation) }
        : { command: "docker", args: lockContainerArgs(settings, operation, hasMedia) },
    );
    const session = new OpsSession(settings, name, child, hasMedia);
    // A session that fails to start lets go of the lock: its container would otherwise keep this
    // process (and the stack's lock) alive for good.
    try {
      // Before anything is touched: a backup image whose restic is older than edms-ops supports.
      const refusal = resticRefusal(settings, restic);
      if (refusal) {
        throw refusal;
      }
      await session.clearLeftovers();
    } catch (err) {
      await session.close();
      throw err;
    }
    return session;
  }

  /**
   * What killed operations leave: helper containers still writing (they go first, before their restic
   * locks), a pg_dump still holding its snapshot, restic locks, scratch repositories, first-release partial
   * backups.
   */
  private async clearLeftovers(): Promise<void> {
    const { settings } = this;
    // Engineless (the scheduler), containers are out of reach: a killed operation's helper that still
    // writes holds the writer lock, which the local lock script waited for.
    const containers = engineless()
      ? []
      : [
          removeByRole(settings.stack, OPS_HELPER_ROLE),
          // Trust-auth scratch servers of a killed verify, and one-off Django containers a killed command
          // left (they hold copies of the secret files): only sessions make the former; the latter only
          // once exited, or never started 10 minutes on, as a deploy's migrate may be starting one now.
          removeByRole(settings.stack, "scratch-db"),
          removeByRole(settings.stack, "ops", "exited"),
          removeStaleCreated(settings.stack, "ops", () => this.hostTime(), 10),
        ];
    // Orphaned dumps of the stack's database (an external server may hold others'), and the side databases
    // of a killed restore (its pg_restore may still be running). The backup role may only end its own
    // dumps, and never drops a database.
    const leftovers = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${DUMP_APPLICATION}' AND datname = current_database()${engineless() ? " AND usename = current_user" : ""};`;
    // Each independent of the others, so asked at once; the stage and the restic locks below only once the
    // helpers that may still write them are gone.
    await allSettledOrThrow([
      ...containers,
      psql(
        settings,
        engineless() ? leftovers : `${leftovers}\n${dropSideDatabasesSql(stackServer(settings))}`,
        undefined,
        { allowFailure: true },
      ),
    ]);
    await this.exec(
      `rm -rf ${SCRATCH.leftovers.join(" ")} ${STAGE_DIR}/*; ` +
        // No `find -delete`: busybox builds without it (Debian's) exist; `-exec rm {} +` works in every find.
        `[ ! -d ${REPOSITORY}/locks ] || find ${REPOSITORY}/locks -type f -exec rm -f {} +`,
    );
  }
}

/**
 * The refusal of a backup image whose restic is older than edms-ops supports, or none; `found` is the first
 * line of its `restic version` (the lock script prints it once held), "" when it has none.
 */
export function resticRefusal(settings: Settings, found: string): OpsError | null {
  const version = resticVersion(found);
  if (found && !olderThanMinimum(version)) {
    return null;
  }
  const runs = !found
    ? "no restic, or one whose `restic version` gave no answer within 10 s"
    : version.every((part) => part === 0)
      ? `a restic whose \`restic version\` edms-ops cannot read (${JSON.stringify(found.slice(0, 80))})`
      : `restic ${version.join(".")}`;
  return refuse(
    `The backup image ${settings.backup.image} (\`edms:backup.image\`) runs ${runs}; edms-ops needs restic ${MINIMUM_RESTIC.join(".")} or newer. Nothing was changed.`,
    `Set \`edms:backup.image\` to ${DEFAULT_BACKUP_IMAGE} (the default) or newer, then run \`pulumi up --stack ${settings.stack}\`.`,
  );
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
