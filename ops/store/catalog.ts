/**
 * What the stack's repository holds: the backups (restic snapshots tagged `edms`), looked up by id, and
 * their manifests. Listing takes no lock (restic --no-lock): a backup in progress is simply not there yet.
 */
import { REASONS } from "../../model/hooks";
import { Settings } from "../../model/settings";
import { failure, refuse } from "../core/errors";
import { lastLine, progress } from "../core/log";
import { volumeExists } from "../engine/docker";
import type { OpsSession } from "../engine/session";
import { backupToolbox } from "../engine/toolbox";
import { addFastKey, REPOSITORY_STATE } from "./fastKey";
import { requireKeys, storeKeysFromEnv } from "./keys";
import { LegacyEntry, listLegacy } from "./legacy";
import { checkBackupId, Manifest, parseManifest } from "./manifest";
import { BACKUPS_DIR, LAYOUT, SCRATCH } from "./layout";
import { BackupEntry, MANIFEST_FILE, parseSnapshots, PASSWORD_FILE, REPOSITORY } from "./restic";
import { notFutureDated } from "./retention";

export type { BackupEntry } from "./restic";

export interface BackupListing {
  /** Backups in the restic repository, oldest first. */
  readonly complete: BackupEntry[];
  /** Backups of the first release (`<id>/manifest.json` directories), to import with `backups import-legacy`. */
  readonly legacy: LegacyEntry[];
  /** The Docker host's clock when listed (absent without a backups volume): see `newestOf`. */
  readonly hostTime?: string;
}

/**
 * The newest backup that may count as newest at the host's clock `now`: one dated after it (a clock that
 * ran ahead, retention.ts isFutureDated) never does.
 */
export function newestOf(
  listing: readonly BackupEntry[],
  now: string | undefined,
): BackupEntry | undefined {
  return notFutureDated(listing, now).pop();
}

/**
 * Shell: `lrestic --no-lock snapshots --json --tag edms`, printed from LAYOUT.snapshotsListed when nothing the
 * listing depends on changed since it was written there, else listed by restic and written there. Each restic
 * start pays the key's scrypt (~0.5 s of CPU); a deploy's health gate and record, `status` and `health` list
 * the same unchanged repository one after the other.
 *
 * The fingerprint covers what restic's answer depends on: the snapshot files (content-addressed and never
 * rewritten: a new, forgotten or re-tagged snapshot is another name) and their folder, the repository's config
 * and key files and the password file (name, size, mtime and ctime to the nanosecond, and inode of each; the
 * password by its sha256, so a listing that restic would refuse is never answered). It is taken before restic
 * lists and checked again after: a change during the listing, even a snapshot written and removed again (the
 * folder's times), leaves the record as it was. Without a `stat` that prints the config's line there is no
 * fingerprint, and restic lists every time. The record (root-only, as the repository) is read through one
 * open file and replaced by rename of a file of its own (mktemp): two listings at once each write a whole one.
 * One that cannot be written (a read-only or full volume) is simply not kept; a partial one a killed listing
 * left is scratch (`.partial-*`), removed by the next session.
 */
export function cachedListing({
  repository = REPOSITORY,
  passwordFile = PASSWORD_FILE,
  record = LAYOUT.snapshotsListed,
  partial = `${BACKUPS_DIR}/.partial-snapshots-listed.XXXXXX`,
}: {
  readonly repository?: string;
  readonly passwordFile?: string;
  readonly record?: string;
  /** mktemp's template of the record being written. */
  readonly partial?: string;
} = {}): string {
  return `fingerprint() { ( cd ${repository} 2>/dev/null || exit 0; files=$(stat -c '%n %s %y %z %i' config keys keys/* snapshots snapshots/* 2>/dev/null) || true; case "$files" in "config "*) ;; *) exit 0 ;; esac; { printf '%s\\n' "$files"; { [ -f ${passwordFile} ] && sha256sum < ${passwordFile}; } || true; } | sha256sum | cut -c1-64 ); }
fp=$(fingerprint)
if [ -n "$fp" ] && [ -f ${record} ]; then
  { if IFS= read -r first && [ "$first" = "$fp" ]; then cat; exit 0; fi; } < ${record}
fi
listed=$(lrestic --no-lock snapshots --json --tag edms)
printf '%s\\n' "$listed"
if [ -n "$fp" ] && [ "$(fingerprint)" = "$fp" ] && tmp=$(mktemp ${partial} 2>/dev/null); then
  { printf '%s\\n%s\\n' "$fp" "$listed" > "$tmp" && mv -f "$tmp" ${record}; } 2>/dev/null || rm -f "$tmp" 2>/dev/null || true
fi`;
}

/**
 * Lists without taking the stack lock (restic --no-lock): a backup in progress is simply not there yet.
 * `legacy: false` leaves out the first release's folders (`legacy` is then empty): their listing is a
 * container of its own, which only `status`, `backups list` and an id not found among the snapshots need.
 */
export async function listBackups(
  settings: Settings,
  { legacy: withLegacy = true }: { readonly legacy?: boolean } = {},
): Promise<BackupListing> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return { complete: [], legacy: [] };
  }
  await storeKeysFromEnv(settings);
  const script = `date -u +%Y-%m-%dT%H:%M:%SZ\n${repositoryListing()}`;
  const [listed, legacy] = await Promise.all([
    // Writable for the listing's record alone (cachedListing); nothing else is written.
    backupToolbox(settings, script, { writable: true }),
    withLegacy ? listLegacy(settings) : Promise.resolve([]),
  ]);
  const [hostTime, ...rest] = listed.stdout.split("\n");
  return { complete: parseListing(settings, rest.join("\n")), legacy, hostTime: hostTime.trim() };
}

const NO_KEY = "__nokey__";

/** Shell: the repository's snapshots as JSON (cachedListing); `[]` without a repository, NO_KEY without its key. */
function repositoryListing(): string {
  return `if [ ! -f ${REPOSITORY}/config ]; then
  echo "[]"
elif [ ! -f ${PASSWORD_FILE} ]; then
  echo "${NO_KEY}"
else
${cachedListing()}
fi`;
}

/** repositoryListing's output: the backups, or the refusal that names how to hand the key over. */
function parseListing(settings: Settings, output: string): BackupEntry[] {
  if (output.trim() === NO_KEY) {
    requireKeys(settings, false);
  }
  return parseSnapshots(output);
}

/** A listing read in a session, which always has the host's clock. */
export type SessionListing = Required<Pick<BackupListing, "complete" | "hostTime">>;

/** sessionSnapshots with the host's clock, as listBackups lists outside a session. */
export async function sessionListing(session: OpsSession): Promise<SessionListing> {
  const [complete, hostTime] = await Promise.all([sessionSnapshots(session), session.hostTime()]);
  return { complete, hostTime };
}

/**
 * The snapshots of the local repository, read under the session's lock (restic's own lock is not needed:
 * the session clears restic's locks as leftovers), answered from the kept listing when nothing changed.
 */
export async function sessionSnapshots(session: OpsSession): Promise<BackupEntry[]> {
  const { stdout } = await session.exec(repositoryListing());
  return parseListing(session.settings, stdout);
}

export async function findBackup(settings: Settings, id: string): Promise<BackupEntry> {
  checkBackupId(id);
  const { complete } = await listBackups(settings, { legacy: false });
  return pickListed(settings, complete, id);
}

/**
 * pickBackup over snapshots listed without the first release's folders: those are listed only when `id` is
 * not among the snapshots, to name one of them as such.
 */
export async function pickListed(
  settings: Settings,
  complete: readonly BackupEntry[],
  id: string,
): Promise<BackupEntry> {
  const listed = complete.some((b) => b.id === id);
  const legacy =
    listed || !(await volumeExists(settings.names.backupsVolume)) ? [] : await listLegacy(settings);
  return pickBackup(settings, complete, legacy, id);
}

export function pickBackup(
  settings: Settings,
  complete: readonly BackupEntry[],
  legacy: readonly LegacyEntry[],
  id: string,
  where = settings.names.backupsVolume,
): BackupEntry {
  const found = complete.filter((b) => b.id === id).pop();
  if (found) {
    return found;
  }
  if (legacy.some((l) => l.id === id)) {
    throw refuse(
      `Backup ${id} is in the first release's format.`,
      `Import it into the repository first: \`edms-ops backups import-legacy --stack ${settings.stack}\`, then retry.`,
    );
  }
  throw refuse(
    `No backup ${id} in ${where}.` +
      (complete.length ? ` Newest: ${complete[complete.length - 1].id}.` : ""),
    complete.length
      ? `List them with \`edms-ops backups list --stack ${settings.stack}\`.`
      : `Take one with \`edms-ops backup --stack ${settings.stack}\`.`,
  );
}

/** Refusals of a backup forgotten after it was looked up: not damage, and nothing was changed. */
const goneErrors = new WeakSet<Error>();

/** True for readManifest's refusal of a backup that is no longer in the repository. */
export function isGone(err: unknown): boolean {
  return err instanceof Error && goneErrors.has(err);
}

/** The manifest stored in a backup's snapshot. */
export async function readManifest(session: OpsSession, entry: BackupEntry): Promise<Manifest> {
  const result = await session.exec(`lrestic dump "$1" ${MANIFEST_FILE}`, [entry.snapshot], {
    allowFailure: true,
  });
  if (result.code !== 0) {
    // Listed before the lock was taken, forgotten by the retention of the operation this one waited for:
    // said as such, not as a backup that is damaged.
    const listed = await sessionSnapshots(session).catch(() => null);
    if (listed && !listed.some((b) => b.snapshot === entry.snapshot)) {
      const gone = refuse(
        `Backup ${entry.id} is no longer in the repository: it was forgotten after it was looked up (by the retention of an operation this one waited for, or by \`backups forget\`). Nothing was changed.`,
        `Choose another with \`edms-ops backups list --stack ${session.settings.stack}\`.`,
      );
      goneErrors.add(gone);
      throw gone;
    }
    throw failure(
      `Backup ${entry.id} is not usable: its manifest cannot be read (${lastLine(result.stderr)}).`,
      `Choose another with \`edms-ops backups list --stack ${session.settings.stack}\`.`,
    );
  }
  try {
    return parseManifest(result.stdout, entry.id);
  } catch (err) {
    throw failure(
      `Backup ${entry.id} is not usable: ${(err as Error).message}.`,
      `Choose another with \`edms-ops backups list --stack ${session.settings.stack}\`.`,
    );
  }
}

/** Creates the local repository on first use (the key must be on the host by then). */
export async function ensureRepository(session: OpsSession): Promise<void> {
  const state = (
    await session.exec(REPOSITORY_STATE, [SCRATCH.keyCheck(process.pid)])
  ).stdout.trim();
  if (state === "nokey") {
    requireKeys(session.settings, false);
  }
  if (state === "missing") {
    progress(`initialising the restic repository in ${session.settings.names.backupsVolume}`);
    await session.exec("lrestic init --repository-version 2 >/dev/null");
  }
  if (state !== "fast") {
    await addFastKey(session, state);
  }
}

export interface PreDeployQuery {
  readonly stack: string;
  /** The release the backup was taken before deploying (its `target`). */
  readonly release: string;
  /** Only backups taken after this time (e.g. the previous deployment: this deploy's own backup). */
  readonly after?: string;
  /** The host's clock: a backup dated after it is never the newest (retention.ts isFutureDated). */
  readonly now?: string;
}

/**
 * The pre-deploy backup for release X: the newest backup the deploy hook took before deploying X on this
 * stack. A listing may hold other stacks' backups (an imported repository), and a release deployed twice
 * has one per deploy, so the newest wins.
 */
export function preDeployBackupFor(
  listing: readonly BackupEntry[],
  query: PreDeployQuery,
): BackupEntry | undefined {
  return preDeployBackupsFor(listing, query)[0];
}

/** Every pre-deploy backup for release X (as preDeployBackupFor picks them), newest first. */
export function preDeployBackupsFor(
  listing: readonly BackupEntry[],
  query: PreDeployQuery,
): BackupEntry[] {
  const after = query.after ? Date.parse(query.after) : -Infinity;
  return notFutureDated(listing, query.now)
    .filter(
      (b) =>
        b.reason === REASONS.preDeploy &&
        b.target === query.release &&
        b.stack === query.stack &&
        Date.parse(b.time) > after,
    )
    .sort((a, b) => (newer(a, b) ? -1 : 1));
}

/** The listing's own order (restic.ts parseSnapshots): by time, then by id for backups of the same second. */
function newer(a: BackupEntry, b: BackupEntry): boolean {
  return (Date.parse(a.time) - Date.parse(b.time) || a.id.localeCompare(b.id)) > 0;
}

/**
 * The pre-deploy backup a deploy of `release` should use when the backup hook handed `handed` (possibly
 * empty): the handed one, unless a newer pre-deploy backup of the same release exists — a retried deploy
 * whose backup hook did not run again hands an old or empty id, and an operator who took a fresh backup
 * after a failed drill means that one.
 */
export function handedOrNewer(
  listing: readonly BackupEntry[],
  query: PreDeployQuery,
  handed: string,
): BackupEntry | undefined {
  const newest = preDeployBackupFor(listing, query);
  const given = handed ? listing.filter((b) => b.id === handed).pop() : undefined;
  if (!given) {
    return newest;
  }
  return newest && newer(newest, given) ? newest : given;
}
