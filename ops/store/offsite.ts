/**
 * Reading the off-host repository (`edms:backup.offsite`) from the Docker host: its listing, what lags
 * behind and the restic locks there (status, health, alerts), one backup fetched back (disaster recovery),
 * and clearing a lock an operator has checked. The copy itself is offsiteCopy.ts; retention off the host
 * is offsitePrune.ts, never run with the host's credentials.
 */
import { Settings } from "../../model/settings";
import { volumeExists } from "../engine/docker";
import { failure, OpsError, refuse } from "../core/errors";
import { requireKeys } from "./keys";
import { progress } from "../core/log";
import {
  BackupEntry,
  OFFSITE_REPOSITORY_FILE,
  parseSnapshots,
  REPOSITORY,
  WRONG_PASSWORD,
} from "./restic";
import { z } from "zod";
import { parseJsonOrNull } from "../core/json";
import { OffsiteCopy } from "./records";
import { COPY_TIMEOUT_SECONDS, readOffsiteCopy } from "./offsiteCopy";
import { OpsSession } from "../engine/session";
import { backupToolbox } from "../engine/toolbox";

/** restic's words for a repository another process holds a lock in. */
const LOCKED = /repository is already locked|unable to create lock/i;

function offsiteProblem(settings: Settings, stderr: string): OpsError {
  const line = stderr.trim().split("\n").pop() ?? "";
  if (LOCKED.test(stderr)) {
    return failure(
      `the off-host repository is locked by another restic: ${line}`,
      `\`edms-ops status --stack ${settings.stack}\` shows the lock and the command that clears it once you checked nobody is using it.`,
    );
  }
  return WRONG_PASSWORD.test(stderr)
    ? failure(
        "the off-host repository does not open with this stack's backup password (it belongs to another stack?)",
        "Check `edms:backup.offsite.repository` names this stack's repository.",
      )
    : failure(
        `the off-host repository is unreachable: ${line || "no answer in time"}`,
        "Check the network and the credentials in `edms:backup.offsite`, then retry.",
      );
}

export async function offsiteSnapshots(session: OpsSession): Promise<BackupEntry[]> {
  const result = await session.exec(`orestic snapshots --json --tag edms`, [], {
    allowFailure: true,
  });
  if (result.code !== 0) {
    throw offsiteProblem(session.settings, result.stderr);
  }
  return parseSnapshots(result.stdout);
}

const LOCKS_MARK = "__locks__";

/** A restic lock file as `restic cat lock` prints it. */
const ResticLockSchema = z.looseObject({
  time: z.string(),
  exclusive: z.boolean().optional(),
  hostname: z.string().optional(),
  pid: z.number().optional(),
});

export interface OffsiteLock {
  readonly time: string;
  readonly exclusive: boolean;
  readonly host: string;
  readonly pid: number | null;
}

/**
 * Off-host listing without the stack lock and without a restic lock (status, `backups list --offsite`);
 * with `locks`, also the restic locks there.
 */
export async function listOffsite(
  settings: Settings,
  options: { readonly locks?: boolean } = {},
): Promise<{ backups: BackupEntry[]; locks: OffsiteLock[] }> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    requireKeys(settings, true);
  }
  const locks = options.locks
    ? // A failed listing fails the whole read (a word list's failure would pass unseen as "no locks"); a lock
      // gone between its listing and its read is one less to show.
      `; echo ${LOCKS_MARK}; locks=$(orestic --no-lock list locks) || exit 1; for l in $locks; do orestic --no-lock cat lock "$l" | tr -d '\n'; echo; done`
    : "";
  const result = await backupToolbox(
    settings,
    `[ -f ${OFFSITE_REPOSITORY_FILE} ] || { echo __nokeys__; exit 0; }; orestic --no-lock snapshots --json --tag edms${locks}`,
    { network: true, allowFailure: true },
  );
  if (result.stdout.includes("__nokeys__")) {
    throw refuse(
      "the off-host credentials are not on the host;",
      `run \`pulumi up --stack ${settings.stack}\` or pass EDMS_RESTIC_PASSWORD and EDMS_OFFSITE_REPOSITORY`,
    );
  }
  if (result.code !== 0) {
    throw offsiteProblem(settings, result.stderr);
  }
  const [snapshots, lockLines = ""] = result.stdout.split(LOCKS_MARK);
  return {
    backups: parseSnapshots(snapshots),
    locks: lockLines.split("\n").flatMap((line) => {
      const lock = line.trim() ? parseJsonOrNull(line, ResticLockSchema) : null;
      return lock
        ? [
            {
              time: lock.time,
              exclusive: lock.exclusive ?? false,
              host: lock.hostname ?? "?",
              pid: lock.pid ?? null,
            },
          ]
        : [];
    }),
  };
}

/** restic treats a lock not refreshed for this long as stale (it refreshes its own every 5 minutes). */
export const STALE_LOCK_MINUTES = 30;

export interface OffsiteLag {
  readonly repository: string;
  readonly reachable: boolean;
  readonly problem?: string;
  readonly count?: number;
  readonly newest?: string | null;
  /** Local backups that have no copy off the host yet. */
  readonly missing?: string[];
  /** restic locks in the off-host repository (a running copy's, or one a killed restic left). */
  readonly locks?: (OffsiteLock & { readonly minutes: number; readonly advice: string })[];
  /** The newest copy from this host (offsite-copy.json); null before the first. */
  readonly lastCopy?: (OffsiteCopy & { running: boolean }) | null;
}

/** What to do about a lock off the host: restic's own staleness rule, else the operator's check. */
export function lockAdvice(
  stack: string,
  lock: OffsiteLock,
  minutes: number,
  copyRunning: boolean,
): string {
  if (minutes >= STALE_LOCK_MINUTES) {
    return `stale (not refreshed for ${minutes} min): clear it with \`edms-ops backups unlock --offsite --stack ${stack}\``;
  }
  const who =
    copyRunning && !lock.exclusive
      ? "this host's off-host copy (running now)"
      : "a restic running now";
  return (
    `held by ${who}, or left by one killed less than ${STALE_LOCK_MINUTES} min ago; once you checked that no other host ` +
    `(an old host of this stack, the off-host prune job) is working on the repository: \`edms-ops backups unlock --offsite --all --stack ${stack}\``
  );
}

export async function offsiteLag(
  settings: Settings,
  local: readonly BackupEntry[],
): Promise<OffsiteLag | null> {
  if (!settings.backup.offsite) {
    return null;
  }
  const repository = settings.backup.offsite.display;
  const lastCopy = await readOffsiteCopy(settings).catch(() => null);
  try {
    const { backups: remote, locks } = await listOffsite(settings, { locks: true });
    const there = new Set(remote.map((b) => b.id));
    const now = Date.now();
    return {
      repository,
      reachable: true,
      count: remote.length,
      newest: remote.length ? remote[remote.length - 1].id : null,
      missing: local.filter((b) => !there.has(b.id)).map((b) => b.id),
      locks: locks.map((lock) => {
        const minutes = Math.max(0, Math.floor((now - Date.parse(lock.time)) / 60_000));
        const advice = lockAdvice(settings.stack, lock, minutes, lastCopy?.running ?? false);
        return { ...lock, minutes, advice };
      }),
      lastCopy,
    };
  } catch (err) {
    return { repository, reachable: false, problem: (err as Error).message, lastCopy };
  }
}

/** Lines for `status` and `health`: count and lag, the last copy, each lock with what to do about it. */
export function describeOffsite(stack: string, off: OffsiteLag): string[] {
  const copy = off.lastCopy;
  const copyLine = !copy
    ? "no copy from this host yet"
    : copy.running
      ? `a copy is running (since ${copy.started})`
      : copy.ok
        ? `last copy ${copy.finished}: ok`
        : copy.finished
          ? `last copy ${copy.finished}: FAILED: ${copy.error}`
          : `last copy started ${copy.started} was cut before it ended`;
  const lines = [
    off.reachable
      ? `off-host ${off.repository}: ${off.count} backup(s), newest ${off.newest ?? "-"}, ` +
        `${off.missing?.length ? `${off.missing.length} behind (${off.missing.join(", ")})` : "up to date"}; ${copyLine}`
      : `off-host ${off.repository}: unreachable (${off.problem}); ${copyLine}`,
  ];
  for (const lock of off.locks ?? []) {
    lines.push(
      `  off-host ${lock.exclusive ? "EXCLUSIVE " : ""}lock of ${lock.host} (pid ${lock.pid ?? "?"}), ${lock.minutes} min old: ${lock.advice}`,
    );
  }
  if (copy && !copy.running && copy.ok === false) {
    lines.push(
      `  the next backup copies what is missing; to copy now: \`edms-ops backup --stack ${stack}\``,
    );
  }
  return lines;
}

/** Whether `health` should warn: unreachable, a failed or cut copy, or a lock off the host. */
export function offsiteNeedsAttention(off: OffsiteLag): boolean {
  const copy = off.lastCopy;
  return (
    !off.reachable ||
    (off.locks ?? []).some((l) => l.exclusive || !copy?.running) ||
    (!!copy && !copy.running && copy.ok !== true)
  );
}

/**
 * Removes restic's locks off the host: those restic itself judges stale (`restic unlock`), or with `all`
 * every lock (`unlock --remove-all`), for an operator who checked that no other host is working there.
 * Never run by a backup: another host (the old one, the prune job) may hold a lock that matters.
 */
export async function unlockOffsite(settings: Settings, all: boolean): Promise<OffsiteLock[]> {
  const result = await backupToolbox(
    settings,
    `[ -f ${OFFSITE_REPOSITORY_FILE} ] || { echo __nokeys__; exit 0; }; orestic unlock \${1:+--remove-all} >/dev/null`,
    { network: true, allowFailure: true, args: [all ? "all" : ""] },
  );
  if (result.stdout.includes("__nokeys__")) {
    requireKeys(settings, true);
  }
  if (result.code !== 0) {
    throw offsiteProblem(settings, result.stderr);
  }
  return (await listOffsite(settings, { locks: true })).locks;
}

/**
 * Brings one backup from the off-host repository into the local one (disaster recovery: the local
 * repository may be new and empty).
 */
export async function fetchFromOffsite(session: OpsSession, id: string): Promise<void> {
  if (!(await ensureOffsiteReadable(session))) {
    requireKeys(session.settings, true);
  }
  const remote = (await offsiteSnapshots(session)).filter((b) => b.id === id).pop();
  if (!remote) {
    throw refuse(
      `No backup ${id} in the off-host repository ${session.settings.backup.offsite?.display}.`,
      `List it with \`edms-ops backups list --offsite --stack ${session.settings.stack}\`. Nothing was changed.`,
    );
  }
  progress(`fetching ${id} from the off-host repository`);
  await session.exec(
    // As long as an outgoing copy may take (EDMS_OFFSITE_COPY_TIMEOUT): a disaster's download is as big.
    `OTIMEOUT="$2"; [ -f ${REPOSITORY}/config ] || frestic init --repository-version 2 --copy-chunker-params >/dev/null; frestic copy "$1" >/dev/null`,
    [remote.snapshot, String(COPY_TIMEOUT_SECONDS)],
  );
}

async function ensureOffsiteReadable(session: OpsSession): Promise<boolean> {
  const probe = await session.exec(`[ -f ${OFFSITE_REPOSITORY_FILE} ] && echo yes || echo no`);
  return probe.stdout.trim() === "yes";
}
