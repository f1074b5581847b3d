/**
 * Off-host copies (`edms:backup.offsite`): after each backup, every local snapshot the off-host repository
 * lacks is copied there with `restic copy` (the off-host repository was created with the local one's
 * chunker parameters, so copies deduplicate), and the same retention policy is applied there. A failed
 * copy never fails the backup (the deploy is gated on the local one); `status` shows the lag.
 */
import { Settings } from "../../model/settings";
import { volumeExists } from "../engine/docker";
import { failure, OpsError, refuse } from "../core/errors";
import { requireKeys } from "./keys";
import { progress, warn } from "../core/log";
import {
  BackupEntry,
  NO_REPOSITORY,
  OFFSITE_REPOSITORY_FILE,
  parseSnapshots,
  PASSWORD_FILE,
  REPOSITORY,
  WRONG_PASSWORD,
} from "./restic";
import { retentionFacts } from "./prune";
import { adoptHistory } from "./history";
import { retention } from "./retention";
import { OpsSession } from "../engine/session";
import { backupToolbox } from "../engine/toolbox";

/**
 * restic retries an unreachable backend for many minutes: every off-host call is bounded (see `orestic`),
 * a copy by this, everything else by a minute.
 */
const COPY_TIMEOUT_SECONDS = Number(process.env.EDMS_OFFSITE_COPY_TIMEOUT) || 3600;

/** Creates the off-host repository on first use; false when its credentials are not on the host. */
async function ensureOffsite(session: OpsSession): Promise<boolean> {
  const probe = await session.exec(
    `[ -f ${OFFSITE_REPOSITORY_FILE} ] || { echo __nokeys__; exit 0; }; orestic cat config >/dev/null`,
    [],
    { allowFailure: true },
  );
  if (probe.stdout.includes("__nokeys__")) {
    return false;
  }
  if (probe.code !== 0) {
    if (!NO_REPOSITORY.test(probe.stderr)) {
      throw offsiteProblem(probe.stderr);
    }
    progress(`initialising the off-host repository ${session.settings.backup.offsite?.display}`);
    // The copy's source is the local repository: its chunker parameters make copies deduplicate.
    await session.exec(
      `orestic init --repository-version 2 --copy-chunker-params --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} >/dev/null`,
    );
  }
  return true;
}

function offsiteProblem(stderr: string): OpsError {
  const line = stderr.trim().split("\n").pop() ?? "";
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

/** Copies what is missing off the host, then applies retention there. Never throws. */
export async function copyToOffsite(session: OpsSession): Promise<void> {
  const { settings } = session;
  try {
    if (!(await ensureOffsite(session))) {
      warn(
        `off-host copy skipped: the credentials of ${settings.backup.offsite?.display} are not on the host. Run \`pulumi up --stack ${settings.stack}\` to store them.`,
      );
      return;
    }
    progress(`copying to the off-host repository ${settings.backup.offsite?.display}`);
    // We hold the stack lock, and one off-host repository serves one stack: restic locks there are ours.
    await session.exec(
      `orestic unlock --remove-all >/dev/null 2>&1 || true; OTIMEOUT=$2; orestic copy --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} --host "$1" --tag edms >/dev/null`,
      [settings.stack, String(COPY_TIMEOUT_SECONDS)],
    );
    const remote = await offsiteSnapshots(session);
    // A new host learns the deployments it lacks from the off-host repository before deciding there.
    await adoptHistory(session, remote, "orestic");
    const decision = retention({
      backups: remote,
      keep: settings.backup.keep,
      pinned: [...session.pinned],
      periodic: settings.backup,
      now: await session.hostTime(),
      ...(await retentionFacts(settings)),
    });
    if (decision.forget.length) {
      await session.exec(
        `OTIMEOUT=${COPY_TIMEOUT_SECONDS}; orestic forget "$@" >/dev/null && orestic prune --max-unused 10% >/dev/null`,
        decision.forget.map((b) => b.snapshot),
      );
    }
    progress(`off-host copy complete: ${remote.length - decision.forget.length} backup(s) there`);
  } catch (err) {
    warn(
      `off-host copy failed (the local backup is complete): ${(err as Error).message.split("\n").slice(-1)[0]}. ` +
        `The next backup copies whatever is missing; \`edms-ops status --stack ${settings.stack}\` shows the lag.`,
    );
  }
}

export async function offsiteSnapshots(session: OpsSession): Promise<BackupEntry[]> {
  const result = await session.exec(`orestic snapshots --json --tag edms`, [], {
    allowFailure: true,
  });
  if (result.code !== 0) {
    throw offsiteProblem(result.stderr);
  }
  return parseSnapshots(result.stdout);
}

/** Off-host listing without the stack lock (status, `backups list --offsite`). */
export async function listOffsite(settings: Settings): Promise<BackupEntry[]> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    requireKeys(settings, true);
  }
  const result = await backupToolbox(
    settings,
    `[ -f ${OFFSITE_REPOSITORY_FILE} ] || { echo __nokeys__; exit 0; }; orestic --no-lock snapshots --json --tag edms`,
    { network: true, allowFailure: true },
  );
  if (result.stdout.includes("__nokeys__")) {
    throw refuse(
      "the off-host credentials are not on the host;",
      `run \`pulumi up --stack ${settings.stack}\` or pass EDMS_RESTIC_PASSWORD and EDMS_OFFSITE_REPOSITORY`,
    );
  }
  if (result.code !== 0) {
    throw offsiteProblem(result.stderr);
  }
  return parseSnapshots(result.stdout);
}

export interface OffsiteLag {
  readonly repository: string;
  readonly reachable: boolean;
  readonly problem?: string;
  readonly count?: number;
  readonly newest?: string | null;
  /** Local backups that have no copy off the host yet. */
  readonly missing?: string[];
}

export async function offsiteLag(
  settings: Settings,
  local: readonly BackupEntry[],
): Promise<OffsiteLag | null> {
  if (!settings.backup.offsite) {
    return null;
  }
  const repository = settings.backup.offsite.display;
  try {
    const remote = await listOffsite(settings);
    const there = new Set(remote.map((b) => b.id));
    return {
      repository,
      reachable: true,
      count: remote.length,
      newest: remote.length ? remote[remote.length - 1].id : null,
      missing: local.filter((b) => !there.has(b.id)).map((b) => b.id),
    };
  } catch (err) {
    return { repository, reachable: false, problem: (err as Error).message };
  }
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
    `[ -f ${REPOSITORY}/config ] || frestic init --repository-version 2 --copy-chunker-params >/dev/null; frestic copy "$1" >/dev/null`,
    [remote.snapshot],
  );
}

async function ensureOffsiteReadable(session: OpsSession): Promise<boolean> {
  const probe = await session.exec(`[ -f ${OFFSITE_REPOSITORY_FILE} ] && echo yes || echo no`);
  return probe.stdout.trim() === "yes";
}

/** Forgets every off-host snapshot of backup `id` (`backups forget`); how many there were. */
export async function forgetOffsite(session: OpsSession, id: string): Promise<number> {
  if (!(await ensureOffsiteReadable(session))) {
    requireKeys(session.settings, true);
  }
  const found = (await offsiteSnapshots(session)).filter((b) => b.id === id);
  if (found.length) {
    await session.exec(
      `OTIMEOUT=${COPY_TIMEOUT_SECONDS}; orestic forget "$@" >/dev/null && orestic prune --max-unused 10% >/dev/null`,
      found.map((b) => b.snapshot),
    );
  }
  return found.length;
}
