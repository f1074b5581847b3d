/** The steps `rollback --previous` is made of, behind the proxy and without it (rollback.ts). */
import { REASONS } from "../../model/hooks";
import { Settings } from "../../model/settings";
import { recordedDigest } from "../../model/images";
import { createBackup } from "../backup/create";
import { migrateAtomically, Step } from "../database/django";
import { incomplete, OpsError } from "../core/errors";
import { progress, say } from "../core/log";
import { markerScript, ROLLBACK_MARKER, RollbackMarker, rollbackAgain } from "../store/markers";
import { Deployment } from "../store/history";
import { OpsSession } from "../engine/session";
import { RedeployTarget } from "../engine/pulumi";

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
