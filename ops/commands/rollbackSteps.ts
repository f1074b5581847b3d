/** The steps `rollback --previous` is made of, behind the proxy and without it (rollback.ts). */
import { REASONS } from "../../model/hooks";
import { Settings } from "../../model/settings";
import { recordedDigest } from "../../model/images";
import { createBackup } from "../backup/create";
import { migrateAtomically, Step } from "../database/django";
import { incomplete, OpsError, refuse } from "../core/errors";
import { progress, say } from "../core/log";
import { markerScript, ROLLBACK_MARKER, RollbackMarker, rollbackAgain } from "../store/markers";
import { Deployment } from "../store/history";
import { OpsSession } from "../engine/session";
import { RedeployTarget } from "../engine/pulumi";
import { preDeployBackupsFor, SessionListing } from "../store/catalog";
import { BackupEntry } from "../store/restic";
import { sameMigrations } from "../store/schemaRelease";

/** The release to configure: the target's version with the digest its deployment recorded, if any. */
export function redeployTarget(settings: Settings, target: Deployment): RedeployTarget {
  return {
    version: target.version,
    digest: recordedDigest(settings.backendImage, target.version, target.reference),
  };
}

/** The same for a rollback planned in a marker (a re-run finishes it with the digest it planned). */
export function markedTarget(settings: Settings, marker: RollbackMarker): RedeployTarget {
  return {
    version: marker.to,
    digest: recordedDigest(settings.backendImage, marker.to, marker.toReference),
  };
}

/** The plan as the operator reads it; `image` is the one that reverses (the newer release's). */
export function describePlan(steps: Step[], backupFirst: boolean, image: string, first?: string) {
  if (first) {
    say(`  - ${first}`);
  }
  if (backupFirst) {
    say("  - back up the current state");
  }
  steps.forEach((s) => say(`  - migrate ${s.app} ${s.to} (with ${image})`));
  if (!steps.length) {
    say("  - no migrations to reverse");
  }
}

/** The rollback's undo, its target the release the rollback goes back to (retention.ts undoSuperseded). */
export async function backupBefore(settings: Settings, to: string): Promise<string | null> {
  return (
    (await createBackup(settings, { reason: REASONS.preRollback, targetVersion: to }))?.entry.id ??
    null
  );
}

/** Every app's reversal in one transaction: a failure or a kill leaves the schema as it was. */
export async function reverse(
  settings: Settings,
  image: string,
  steps: readonly Step[],
): Promise<void> {
  if (steps.length) {
    progress(`reversing migrations with ${image} (one transaction)`);
    await migrateAtomically(
      settings,
      image,
      steps.map((s) => [s.app, s.to] as const),
      `reversing ${steps.map((s) => s.app).join(", ")}`,
    );
  }
}

export async function writeMarker(session: OpsSession, marker: RollbackMarker): Promise<void> {
  await session.exec(markerScript(), [ROLLBACK_MARKER], { input: JSON.stringify(marker) });
}

/** No Pulumi CLI could run: the commands left to run are printed; the rollback is not done. */
export function notRedeployed(settings: Settings, version: string, thenAgain: boolean): OpsError {
  return incomplete(
    `The rollback of ${settings.stack} to ${version} is not finished: no Pulumi CLI could be run here` +
      (thenAgain ? " and no data was changed." : ", the data steps are done."),
    thenAgain
      ? `Run the pulumi commands above, then \`${rollbackAgain(settings)}\` again.`
      : `Run the pulumi commands above to deploy ${version}.`,
  );
}

/**
 * What `rollback --restore` restores, chosen under the restore's lock from its listing and the history: a
 * pre-deploy backup of the configured release taken since `target` was deployed, up to the one the configured
 * release's first deployment since then recorded (a later redeploy of it, a rebuilt image, backs up data it
 * wrote itself, on the same schema when it adds no migrations), the newest of them whose data has the
 * migration state `target`'s deployment recorded: read from each backup's manifest, not its release label, as
 * a redeploy after a failed health gate backs up data already on the newer schema, labelled the release still
 * serving behind the proxy. Never one of an earlier round of the same two releases: restoring it would lose
 * everything since.
 */
export async function rollbackBackup(
  settings: Settings,
  listing: SessionListing,
  history: readonly Deployment[],
  target: Deployment,
  migrationsOf: (entry: BackupEntry) => Promise<Record<string, string>>,
): Promise<BackupEntry> {
  const since = preDeployBackupsFor(listing.complete, {
    stack: settings.stack,
    release: settings.version,
    now: listing.hostTime,
    after: target.deployedAt,
  });
  const candidates = upToFirstDeployment(since, history, settings.version, target);
  for (const candidate of candidates) {
    if (sameMigrations(await migrationsOf(candidate), target.migrations)) {
      say(`  the pre-deploy backup of ${settings.version} is ${candidate.id}`);
      return candidate;
    }
    progress(
      `${candidate.id} holds another migration state than ${target.version}'s deployment recorded (a redeploy of ${settings.version} after its migrations ran?): passed over`,
    );
  }
  throw refuse(
    `No pre-deploy backup of ${settings.version} taken since ${target.version} was deployed (${target.deployedAt}) holds ${target.version}'s migration state${candidates.length ? ` (${candidates.length} passed over)` : ""}. Nothing was changed.`,
    `Use rollback without --restore, or choose a backup by hand: \`edms-ops backups list --stack ${settings.stack}\`, then \`edms-ops restore <id> --stack ${settings.stack}\`.`,
  );
}

/**
 * `since` (newest first) without the backups taken after `release`'s first deployment after `target`: from
 * the backup that deployment recorded on (by id, no clocks compared), or else taken by its time.
 */
function upToFirstDeployment(
  since: readonly BackupEntry[],
  history: readonly Deployment[],
  release: string,
  target: Deployment,
): BackupEntry[] {
  const first = history.find(
    (d) => d.version === release && Date.parse(d.deployedAt) > Date.parse(target.deployedAt),
  );
  if (!first) {
    return [...since];
  }
  const recorded = since.findIndex((b) => b.id === first.preDeployBackup);
  return recorded >= 0
    ? since.slice(recorded)
    : since.filter((b) => Date.parse(b.time) <= Date.parse(first.deployedAt));
}
