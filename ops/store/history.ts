/**
 * Deployment history: `history.jsonl` in the backups volume, one JSON object per successful deploy. Every
 * backup's snapshot carries a copy (SNAPSHOT_HISTORY), so the history lives in the repositories too: a new
 * host recovers it from them (adoptHistory) and goes on from there.
 */
import { Settings, databaseIdentity } from "../../model/settings";
import { migrationState } from "../database/postgres";
import { liveWeb } from "../engine/services";
import { backupsMount, readBackupsVolume, toolbox } from "../engine/toolbox";
import { LAYOUT } from "./layout";
import { Deployment, DeploymentSchema } from "./records";
import { parseJsonLines } from "../core/json";
import { progress } from "../core/log";
import type { OpsSession } from "../engine/session";
import { BackupEntry, STAGE_DIR } from "./restic";

export type { Deployment } from "./records";

export async function readHistory(settings: Settings): Promise<Deployment[]> {
  const stdout = await readBackupsVolume(settings, `cat ${LAYOUT.history} 2>/dev/null || true`);
  // A torn last line from a killed append is not a deployment.
  return parseJsonLines(stdout, DeploymentSchema);
}

/** history.jsonl read in the session's own container (the stack lock held). */
export async function sessionHistory(session: OpsSession): Promise<Deployment[]> {
  const { stdout } = await session.exec('cat "$1" 2>/dev/null || true', [LAYOUT.history]);
  return parseJsonLines(stdout, DeploymentSchema);
}

/** Deployments onto the current data volumes (a fresh reset starts a new history line). */
export async function currentHistory(settings: Settings): Promise<Deployment[]> {
  return onCurrentVolumes(settings, await readHistory(settings));
}

/** currentHistory read in the session's own container (the stack lock held). */
export async function sessionCurrentHistory(session: OpsSession): Promise<Deployment[]> {
  return onCurrentVolumes(session.settings, await sessionHistory(session));
}

function onCurrentVolumes(settings: Settings, history: Deployment[]): Deployment[] {
  return history.filter((d) => d.postgresVolume === databaseIdentity(settings));
}

/**
 * Appends what serves now: the live web's image and the database's migration state at this moment, with the
 * release reference the caller knows it pulled (`extra.reference`).
 */
export async function recordServing(
  settings: Settings,
  version: string,
  extra: Pick<Deployment, "preDeployBackup" | "rolledBackFrom" | "reference">,
): Promise<Deployment> {
  const web = await liveWeb(settings);
  const entry: Deployment = {
    version,
    image: web?.image ?? "unknown",
    deployedAt: new Date().toISOString(),
    stack: settings.stack,
    environment: settings.environment,
    postgresVolume: databaseIdentity(settings),
    migrations: await migrationState(settings),
    ...extra,
  };
  await appendHistory(settings, entry);
  return entry;
}

/**
 * history.jsonl is appended to outside the stack lock (a deploy's record hook) and rewritten inside it
 * (adoptHistory): both hold flock on this file, so an append is never lost to a rewrite.
 */
const HISTORY_LOCK = `${LAYOUT.history}.lock`;

/** Shell: the bytes history.jsonl (`$1`) holds now, 0 when there is none. */
const HISTORY_BYTES = '$(( $(cat "$1" 2>/dev/null | wc -c) ))';

export async function appendHistory(settings: Settings, entry: Deployment): Promise<void> {
  await toolbox(
    settings,
    [backupsMount(settings)],
    `exec 9>>"$1" && flock 9 && cat >> "$2" && sync`,
    { input: JSON.stringify(entry) + "\n", args: [HISTORY_LOCK, LAYOUT.history] },
  );
}

/** Where each snapshot carries the history as of its backup (beside the dump and the manifest). */
export const SNAPSHOT_HISTORY = `${STAGE_DIR}/history.jsonl`;

const deploymentKey = (d: Deployment) => `${d.deployedAt}|${d.stack}|${d.version}`;

/** Pure: both histories, each deployment once, oldest first. */
export function mergeHistories(
  host: readonly Deployment[],
  carried: readonly Deployment[],
): Deployment[] {
  const byKey = new Map<string, Deployment>();
  for (const entry of [...carried, ...host]) {
    byKey.set(deploymentKey(entry), entry);
  }
  return [...byKey.values()].sort((a, b) => Date.parse(a.deployedAt) - Date.parse(b.deployedAt));
}

/**
 * Pure: the snapshot whose history copy the host lacks, or undefined. The host's history misses deployments
 * when a repository holds a backup of real data older than the host's first deployment (a new host after a
 * disaster, before or after its restore): the newest such backup carries the longest history. Imported and
 * bootstrap backups say nothing of this stack's deployments.
 */
export function historySource(
  host: readonly Deployment[],
  listing: readonly BackupEntry[],
  adopted: string,
): BackupEntry | undefined {
  const first = host.length ? Math.min(...host.map((d) => Date.parse(d.deployedAt))) : Infinity;
  const source = listing
    .filter((b) => !b.bootstrap && !b.imported && Date.parse(b.time) < first)
    .pop();
  return source && source.snapshot !== adopted ? source : undefined;
}

/**
 * Merges the history a repository's snapshot carries into history.jsonl when the host lacks it (see
 * historySource), under the session's lock. `restic` is `lrestic` (local) or `orestic` (off-host). At most
 * one read per source snapshot: the one merged last is remembered (.history-adopted). Returns the host's
 * history as it now is, so the caller need not read it again.
 */
export async function adoptHistory(
  session: OpsSession,
  listing: readonly BackupEntry[],
  restic: "lrestic" | "orestic",
): Promise<Deployment[]> {
  const state = await session.exec(
    `exec 9>>"$3" && flock 9 && echo ${HISTORY_BYTES} && ` +
      `{ cat "$1" 2>/dev/null || true; } && echo && echo __adopted__ && { cat "$2" 2>/dev/null || true; }`,
    [LAYOUT.history, LAYOUT.historyAdopted, HISTORY_LOCK],
  );
  const [counted, adopted] = state.stdout.split("__adopted__\n");
  const hostBytes = Number(counted.slice(0, counted.indexOf("\n")));
  const hostText = counted.slice(counted.indexOf("\n") + 1);
  const host = parseJsonLines(hostText, DeploymentSchema);
  const source = historySource(host, listing, (adopted ?? "").trim());
  if (!source) {
    return host;
  }
  const carried = await session.exec(`${restic} dump "$1" ${SNAPSHOT_HISTORY}`, [source.snapshot], {
    allowFailure: true,
  });
  const merged = mergeHistories(host, parseJsonLines(carried.stdout, DeploymentSchema));
  if (merged.length > host.length) {
    progress(
      `history: ${merged.length - host.length} earlier deployment(s) recovered from backup ${source.id}`,
    );
  }
  // Whatever a deploy appended since the read above (past its byte count) goes after the merged lines:
  // it is newer than all of them. It is printed, so the caller gets the history as it now is.
  const appended = await session.exec(
    `exec 9>>"$4" && flock 9 && cat > "$1.new" && n=${HISTORY_BYTES} && ` +
      `{ [ "$n" -le "$5" ] || tail -c +$(($5 + 1)) "$1" | tee -a "$1.new"; } && ` +
      `sync && mv "$1.new" "$1" && printf '%s' "$3" > "$2"`,
    [LAYOUT.history, LAYOUT.historyAdopted, source.snapshot, HISTORY_LOCK, String(hostBytes)],
    { input: merged.map((d) => JSON.stringify(d) + "\n").join("") },
  );
  return [...merged, ...parseJsonLines(appended.stdout, DeploymentSchema)];
}

/** Stages history.jsonl beside the dump, so the snapshot carries it. */
export async function stageHistory(session: OpsSession): Promise<void> {
  await session.exec(`if [ -f "$1" ]; then cp "$1" "$2"; else : > "$2"; fi`, [
    LAYOUT.history,
    SNAPSHOT_HISTORY,
  ]);
}
