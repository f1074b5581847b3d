/**
 * `rollback --previous`: back to the release deployed before the configured one, data and code together.
 *
 * Behind the proxy the code goes first: the previous release is redeployed (it starts beside the current one
 * and takes over only once healthy), and only then are the newer release's migrations reversed, with the newer
 * image, after a backup. So no request meets code older than its schema's reversal or newer than it: the older
 * release runs for a moment on a schema with the newer release's additions (which it does not read), never the
 * newer release on a schema it lacks. A marker in the backups volume carries the plan from the first half to
 * the second, so a rollback cut in between (or done by hand without the Pulumi CLI) is finished by running
 * the same command again.
 *
 * Without the proxy there is no switch to wait for: web and worker stop first (nothing writes between the
 * backup and the reversal), then the data steps, then the redeploy. Its marker keeps the plan until the
 * target is deployed, so a run cut short after its `pulumi config set` (the configured release is the
 * target then) is finished by running it again, not planned afresh towards the release it left.
 */
import { Command } from "commander";
import { Settings } from "../../model/settings";
import { readManifest, sessionListing } from "../store/catalog";
import { runningVersion } from "../engine/services";
import { connect, globalOptions, stackOf } from "../core/context";
import { migrationState, requirePostgres } from "../database/postgres";
import { plannedReversal } from "../database/django";
import { failure, refuse } from "../core/errors";
import { currentHistory, Deployment, recordServing, sessionCurrentHistory } from "../store/history";
import { lastLine, progress, say, warn } from "../core/log";
import {
  rollbackAgain,
  readMarker,
  refuseDuringRestore,
  ROLLBACK_MARKER,
  RollbackMarker,
} from "../store/markers";
import { restoreBackup } from "../backup/restore";
import { startAgain, stopWriters } from "../backup/undo";
import { OpsSession, withSession } from "../engine/session";
import { projectDirOf } from "../core/stack";
import { redeploy } from "../engine/pulumi";
import {
  backupBefore,
  describePlan,
  markedTarget,
  notRedeployed,
  redeployTarget,
  reverse,
  rollbackBackup,
  writeMarker,
} from "./rollbackSteps";
import { releaseReference } from "../../model/images";

interface RollbackOptions {
  readonly backupFirst?: boolean;
  readonly restore?: boolean;
  readonly confirm?: string;
  readonly afterFailedDeploy?: boolean;
}

export function register(program: Command): void {
  program
    .command("rollback")
    .description(
      "Go back to the previous release: redeploy it and reverse the newer release's migrations to its recorded state (or --restore its pre-deploy backup)",
    )
    .requiredOption("--previous", "roll back to the release deployed before the configured one")
    .option("--backup-first", "take a backup before changing any data (the default on production)")
    .option("--no-backup-first", "skip that backup (refused on production)")
    .option(
      "--restore",
      "restore the pre-deploy backup of the configured release instead of reversing migrations (loses data written since)",
    )
    .option("--confirm <stack>", "required on production: --confirm production")
    .option(
      "--after-failed-deploy",
      "a deploy job's rollback: refused when the configured release is already the newest recorded deployment (the failure was not the release's)",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops rollback --previous --stack production --confirm production\n  edms-ops rollback --previous --backup-first --stack staging\n  edms-ops rollback --previous --restore --stack staging",
    )
    .action(rollbackCommand);
}

/** Production: `--confirm production` always, and the backup first cannot be skipped. Returns backupFirst. */
function productionRules(settings: Settings, opts: RollbackOptions): boolean {
  if (settings.environment !== "production") {
    return opts.backupFirst ?? false;
  }
  if (opts.confirm !== "production") {
    throw refuse(
      `rollback on production changes live code and data and needs \`--confirm production\`${opts.confirm ? ` (got \`${opts.confirm}\`)` : ""}. Nothing was changed.`,
      "Run it again with `--confirm production`.",
    );
  }
  if (opts.backupFirst === false) {
    throw refuse(
      "rollback on production always takes a backup first;",
      "drop `--no-backup-first`. Nothing was changed.",
    );
  }
  return true;
}

/** The newest deployment of another release than the configured one (which may have failed before being recorded). */
async function previousRelease(settings: Settings, afterFailedDeploy = false): Promise<Deployment> {
  const history = await currentHistory(settings);
  const newest = history[history.length - 1];
  if (afterFailedDeploy && newest?.version === settings.version) {
    // A deploy records itself only once it succeeded: this release succeeded before the run that failed,
    // which changed something else (config, the host). An older release would not fix that, and going back
    // reverses migrations.
    throw refuse(
      `The deploy that failed did not change the release: ${settings.version} is already the newest recorded deployment of ${settings.stack} (${newest.deployedAt}), so nothing is rolled back to an older release. Nothing was changed.`,
      `Fix the cause the failed \`pulumi up\` printed and deploy again; to go back a release anyway, run \`${rollbackAgain(settings)}\`.`,
    );
  }
  const target = [...history].reverse().find((d) => d.version !== settings.version);
  if (!target) {
    throw refuse(
      `No earlier release than ${settings.version} in the deployment history of ${settings.stack} ` +
        `(${history.length} deployment(s) on these volumes); nothing to roll back to. Nothing was changed.`,
      `To go back to an earlier state of the data instead, restore a backup: \`edms-ops backups list --stack ${settings.stack}\`.`,
    );
  }
  return target;
}

/**
 * The second half behind the proxy: the older release serves (checked, not assumed), then backup, reversal
 * with the newer image, a history entry with the reversed migration state, and the marker goes.
 */
async function finishAfterSwitch(
  settings: Settings,
  marker: RollbackMarker,
  backupFirst: boolean,
  projectDir: string,
): Promise<void> {
  let live = await runningVersion(settings);
  if (live !== marker.to) {
    progress(`${marker.to} does not serve yet (live: ${live ?? "nothing"})`);
    if (!(await redeploy(settings, markedTarget(settings, marker), projectDir, true))) {
      throw notRedeployed(settings, marker.to, true);
    }
    live = await runningVersion(settings);
    if (live !== marker.to) {
      throw failure(
        `After the redeploy, ${live ?? "nothing"} serves instead of ${marker.to}; no migration was reversed.`,
        `Check \`edms-ops status --stack ${settings.stack}\`, then run the rollback again.`,
      );
    }
  }
  const backup = await withSession(
    settings,
    `rollback ${marker.from} → ${marker.to}`,
    async (session) => {
      await refuseDuringRestore(session, "reversing migrations");
      const steps = plannedReversal(await migrationState(settings), marker.migrations, marker.to);
      const taken = backupFirst ? await backupBefore(settings, marker.to) : null;
      await reverse(settings, marker.fromImage, steps);
      if (steps.length) {
        await recordServing(settings, marker.to, {
          preDeployBackup: taken,
          rolledBackFrom: marker.from,
          reference: marker.toReference ?? releaseReference(settings, marker.to),
        });
      }
      await session.exec('rm -f "$1"', [ROLLBACK_MARKER]);
      return taken;
    },
  );
  say(`Rolled back to ${marker.to}: it serves, and ${marker.from}'s migrations are reversed.`);
  if (backup) {
    say(`The state before the rollback is backup ${backup}.`);
  }
}

async function rollbackByRestore(
  settings: Settings,
  target: Deployment,
  projectDir: string,
): Promise<void> {
  say(
    `  - restore the pre-deploy backup of ${settings.version} (it backs up the current state first)`,
  );
  say(`  - redeploy ${target.version}`);
  // Chosen under the restore's lock: retention or a forget cannot take it between the choice and the restore.
  const lookUp = async (session: OpsSession) =>
    rollbackBackup(
      settings,
      await sessionListing(session),
      await sessionCurrentHistory(session),
      target,
      async (entry) => (await readManifest(session, entry)).migrations,
    );
  const result = await restoreBackup(
    settings,
    `rollback --restore (pre-deploy backup of ${settings.version})`,
    lookUp,
  );
  const redeployed = await redeploy(settings, redeployTarget(settings, target), projectDir, false);
  if (result.resumed) {
    say(`An interrupted restore of ${result.resumed} was unfinished: this one replaced it.`);
  }
  if (result.undoBackup) {
    // The undo of the interrupted restore's first attempt, kept: the state before that restore.
    say(
      `The state before the rollback${result.resumed ? ` and that restore` : ""} is backup ${result.undoBackup}.`,
    );
  }
  if (!redeployed) {
    throw notRedeployed(settings, target.version, false);
  }
}

/**
 * An unfinished rollback is finished, not replaced: `--restore` waits for it, and a configured release that
 * is neither its `from` nor its `to` (a deploy of another release that failed before its record, which would
 * supersede the plan) is for an operator to sort out, not for a finish towards another release.
 */
function refuseBesidePending(
  settings: Settings,
  pending: RollbackMarker,
  opts: RollbackOptions,
): void {
  const again = `\`${rollbackAgain(settings)}\``;
  if (opts.restore) {
    throw refuse(
      `A rollback ${pending.from} → ${pending.to} is unfinished;`,
      `finish it first with ${again}. Nothing was changed.`,
    );
  }
  if (settings.version !== pending.from && settings.version !== pending.to) {
    throw refuse(
      `A rollback ${pending.from} → ${pending.to} is unfinished, but the configured release is ${settings.version}: finishing it would deploy ${pending.to}. Nothing was changed.`,
      `To finish it, set \`edms:version\` back to ${pending.from} and run ${again}; to go on with ${settings.version} instead, deploy it (\`pulumi up --stack ${settings.stack}\`): its record supersedes the rollback.`,
    );
  }
}

async function rollbackCommand(opts: RollbackOptions, command: Command): Promise<void> {
  // Refusals first, from the stack file alone.
  const settings = stackOf(command);
  const backupFirst = productionRules(settings, opts);
  await connect(settings);
  await requirePostgres(settings);
  const projectDir = projectDirOf(globalOptions(command));
  const pending = await readMarker(settings, "rollback");
  if (pending) {
    refuseBesidePending(settings, pending, opts);
    say(`Finishing the rollback ${pending.from} → ${pending.to} started ${pending.started}.`);
    // Its own plan, not one made afresh: after its `pulumi config set`, the configured release is already
    // the target, and the history's "previous" release would be the one rolled back from.
    return pending.withoutProxy
      ? rollbackWithoutProxy(settings, pending, backupFirst, projectDir, true)
      : finishAfterSwitch(settings, pending, backupFirst, projectDir);
  }
  const target = await previousRelease(settings, opts.afterFailedDeploy);
  say(
    `Will roll ${settings.stack} back from ${settings.version} to ${target.version} (deployed ${target.deployedAt}):`,
  );
  if (opts.restore) {
    return rollbackByRestore(settings, target, projectDir);
  }
  const marker: RollbackMarker = {
    from: settings.version,
    fromImage: releaseReference(settings),
    to: target.version,
    ...(target.reference ? { toReference: target.reference } : {}),
    migrations: target.migrations,
    started: new Date().toISOString(),
  };
  if (settings.proxy.enabled) {
    say(`  - redeploy ${target.version}; the proxy switches to it once it is healthy`);
    describePlan(
      plannedReversal(await migrationState(settings), marker.migrations, marker.to),
      backupFirst,
      marker.fromImage,
    );
    await withSession(settings, "rollback: plan", async (session) => {
      await refuseDuringRestore(session, "rolling back");
      await writeMarker(session, marker);
    });
    if (!(await redeploy(settings, markedTarget(settings, marker), projectDir, true))) {
      throw notRedeployed(settings, target.version, true);
    }
    return finishAfterSwitch(settings, marker, backupFirst, projectDir);
  }
  const plan = { ...marker, withoutProxy: true };
  return rollbackWithoutProxy(settings, plan, backupFirst, projectDir, false);
}

/**
 * Without the proxy: writers stopped, the backup, the reversal in one transaction, then the redeploy. The
 * plan is kept in the marker until `marker.to` is deployed with nothing left to reverse (record-deployment
 * removes it then): a run cut short, even after its `pulumi config set`, is finished by running it again
 * (`resumed`). A run again with nothing left to reverse only redeploys: it neither stops the release that may
 * serve by now nor takes another undo, which would pass for the state before the rollback.
 */
async function rollbackWithoutProxy(
  settings: Settings,
  marker: RollbackMarker,
  backupFirst: boolean,
  projectDir: string,
  resumed: boolean,
): Promise<void> {
  // The schema, not the marker, says what is left: a migrate run by hand since may have undone the reversal.
  const steps = plannedReversal(await migrationState(settings), marker.migrations, marker.to);
  const onlyRedeploy = resumed && !steps.length;
  if (onlyRedeploy) {
    say(`  - ${marker.from}'s migrations are reversed already`);
  } else {
    describePlan(steps, backupFirst, marker.fromImage, "stop web/worker");
  }
  say(`  - redeploy ${marker.to}`);
  const backup = onlyRedeploy ? null : await dataSteps(settings, marker, backupFirst, resumed);
  const redeployed = await redeploy(settings, markedTarget(settings, marker), projectDir, false);
  if (backup) {
    say(`The state before the rollback is backup ${backup}.`);
  }
  if (!redeployed) {
    throw notRedeployed(settings, marker.to, false);
  }
}

/**
 * The data steps under the lock, a new plan written first; returns the backup taken first, if any. A failure
 * leaves the schema as it was (one transaction): a new plan goes with it, a resumed one stays (after its
 * `pulumi config set`, a plan made afresh would go "back" to the release it left).
 */
async function dataSteps(
  settings: Settings,
  marker: RollbackMarker,
  backupFirst: boolean,
  resumed: boolean,
): Promise<string | null> {
  return withSession(settings, "rollback", async (session) => {
    await refuseDuringRestore(session, "rolling back");
    if (!resumed) {
      // Only what a run cut short is finished by: a full backups volume that cannot take it fails no rollback.
      await writeMarker(session, marker).catch((err: Error) =>
        warn(
          `the rollback's plan could not be kept (${lastLine(err.message)}); a run cut short plans afresh`,
        ),
      );
    }
    // Those found running are started again on a failure, of the stop itself too.
    let writers: string[] = [];
    try {
      await stopWriters(settings, (found) => (writers = found));
      const taken = backupFirst ? await backupBefore(settings, marker.to) : null;
      // Planned again under the lock: a deploy waited for may have changed the migration state.
      await reverse(
        settings,
        marker.fromImage,
        plannedReversal(await migrationState(settings), marker.migrations, marker.to),
      );
      return taken;
    } catch (err) {
      // The reversal is one transaction: whatever failed, the schema is as it was, so the old code serves
      // again.
      if (writers.length) {
        progress(`the rollback's data steps failed${await startAgain(writers)}`);
      }
      if (!resumed) {
        await session.exec('rm -f "$1"', [ROLLBACK_MARKER]).catch(() => undefined);
      }
      throw err;
    }
  });
}
