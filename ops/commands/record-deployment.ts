import { Command } from "commander";
import { BackupListing, listBackups } from "../store/catalog";
import { checkBackupId } from "../store/manifest";
import { openStack } from "../core/context";
import { allSettledOrThrow } from "../core/errors";
import { currentHistory, Deployment, recordServing } from "../store/history";
import { say } from "../core/log";
import { readMarker, ROLLBACK_MARKER } from "../store/markers";
import { migrationState } from "../database/postgres";
import { reversalSteps } from "../database/django";
import { handedOrNewer, preDeployBackupFor } from "../store/catalog";
import { backupToolbox } from "../engine/toolbox";
import { Settings } from "../../model/settings";
import { releaseReference } from "../../model/images";

export function register(program: Command): void {
  program
    .command("record-deployment")
    .description(
      "Append the deployed release to history.jsonl in the backups volume (version, image and its reference, time, migrations, pre-deploy backup)",
    )
    .option(
      "--backup-id <id>",
      "the pre-deploy backup this deploy took, as its hook printed it (empty: it found nothing to back up); without it, the newest pre-deploy backup for this release since the last deployment",
    )
    .addHelpText("after", "\nRun by `pulumi up` after the health gate passes.")
    .action(async (opts: { backupId?: string }, command: Command) => {
      if (opts.backupId) {
        checkBackupId(opts.backupId);
      }
      const settings = await openStack(command);
      // The history, the backups (restic's listing) and a pending rollback's marker, read at once: the
      // history and the marker in one helper container (quick reads share one), the listing in its own.
      const [history, listing, rollback] = await allSettledOrThrow([
        currentHistory(settings),
        listBackups(settings, { legacy: false }),
        readMarker(settings, "rollback"),
      ]);
      const entry = await recordServing(settings, settings.version, {
        preDeployBackup: preDeployBackupOf(settings, history, opts.backupId, listing),
        reference: releaseReference(settings),
      });
      // A deploy of any other release than a pending rollback's target supersedes that rollback's plan.
      // Without the proxy a deploy of the target is its last step, once nothing is left to reverse (the
      // schema says so, not how far the rollback got: a migrate by hand may have undone the reversal).
      const done =
        rollback?.withoutProxy === true &&
        rollback.to === settings.version &&
        !reversalSteps(await migrationState(settings), rollback.migrations).length;
      if (rollback && (rollback.to !== settings.version || done)) {
        await backupToolbox(settings, 'rm -f "$1"', { writable: true, args: [ROLLBACK_MARKER] });
        say(
          done
            ? `the rollback ${rollback.from} → ${rollback.to} is complete`
            : `the unfinished rollback ${rollback.from} → ${rollback.to} is superseded by this deploy`,
        );
      }
      say(`recorded deployment of ${entry.version} (${history.length + 1} on these volumes)`);
    });
}

/**
 * The backup the deploy hook hands over is the one this deploy took. An operator recording by hand (or a
 * stack without the pre-deploy hook) gets the newest one for this release since the last deployment.
 */
function preDeployBackupOf(
  settings: Settings,
  history: readonly Deployment[],
  handed: string | undefined,
  { complete, hostTime }: BackupListing,
): string | null {
  const since = history.length ? history[history.length - 1].deployedAt : undefined;
  const query = { stack: settings.stack, release: settings.version, after: since, now: hostTime };
  // A retried deploy whose backup hook did not run again hands an old or empty id: the newest wins.
  const found =
    handed === undefined
      ? preDeployBackupFor(complete, query)
      : handedOrNewer(complete, query, handed);
  return found?.id ?? (handed || null);
}
