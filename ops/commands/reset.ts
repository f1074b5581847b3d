import { Command } from "commander";
import { createBackup } from "../backup/create";
import { hasSchema, psql, requirePostgres, startPostgres } from "../database/postgres";
import { emptyExternalDatabaseSql } from "../database/created";
import { connect, requireConfirm, stackOf } from "../core/context";
import { docker, inspectContainer, volumeExists } from "../engine/docker";
import { refuse } from "../core/errors";
import { progress, say } from "../core/log";
import { appContainers } from "../engine/services";
import { withSession } from "../engine/session";
import { RESTORE_MARKER, ROLLBACK_MARKER } from "../store/markers";
import { hasMediaFiles } from "../backup/mediaCount";
import { bucketMedia, mediaDescription, Settings } from "../../model/settings";
import { emptyBucketPrefix, requireOwnPrefix } from "../backup/bucket";

export function register(program: Command): void {
  program
    .command("reset")
    .description(
      "Fresh start for dev/staging: back up, stop the stack, remove its postgres, redis and media volumes (an external database: empty the schemas its admin owns; backups are kept). Always refused on production",
    )
    .option("--confirm <stack>", "the stack name again, to confirm")
    .option("--no-backup", "skip the backup taken first")
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops reset --stack staging --confirm staging && npm run up -- --stack staging",
    )
    .action(resetCommand);
}

async function resetCommand(
  opts: { confirm?: string; backup: boolean },
  command: Command,
): Promise<void> {
  // Decided by the stack file first, before any engine call (an unreachable host or a stray DOCKER_HOST
  // must not turn the refusal into a connection error), then by the labels on the volumes themselves.
  const settings = stackOf(command);
  await refuseProduction(settings);
  const n = settings.names;
  const external = settings.database;
  // An external database is emptied, never removed: its server, its roles and the database stay.
  const volumes = [...(external ? [] : [n.postgresVolume]), n.redisVolume, n.mediaVolume];
  requireConfirm(settings, opts.confirm, "reset");
  if (settings.media) {
    // Before anything is stopped or backed up: emptying a prefix another stack's is nested in would take its objects.
    await requireOwnPrefix(settings, "the reset");
  }
  const containers = [
    // First: a scheduled backup must not run against the stack while it is taken apart. Always named (a
    // scheduler of an earlier schedule may still run); `rm -f` of a missing one is ignored below.
    n.schedulerContainer,
    ...(await appContainers(settings)),
    ...(settings.proxy.enabled ? [n.proxyContainer] : []),
    n.redisContainer,
    ...(external ? [] : [n.postgresContainer]),
  ];
  announce(settings, opts.backup, containers, volumes);
  const backupId = await backupWithSchedulerStopped(settings, opts.backup);
  // Under the stack's lock, so no other operation works on what goes; without the media mount, as the
  // media volume is among what goes. A stack without a backups volume has no operation to wait for.
  const remove = () => removeData(settings, containers, volumes);
  if (await volumeExists(n.backupsVolume)) {
    await withSession(
      settings,
      "reset",
      async (session) => {
        await remove();
        // An unfinished restore or rollback was of the data that just went: its marker would keep the
        // fresh stack's scheduled backups skipped and its health failing for good.
        await session.exec('rm -f "$1" "$2"', [RESTORE_MARKER, ROLLBACK_MARKER]);
      },
      { media: false },
    );
  } else {
    await remove();
  }
  say(
    `Reset ${settings.stack}: the next \`pulumi up --refresh --stack ${settings.stack}\` is a fresh first deploy (superuser and fixtures).`,
  );
  if (backupId) {
    say(`To undo, deploy, then run: edms-ops restore ${backupId} --stack ${settings.stack}`);
  }
}

/** The stack's containers and data volumes removed; an external database and a bucket's prefix emptied. */
async function removeData(settings: Settings, containers: string[], volumes: string[]) {
  progress("removing containers");
  await docker(["rm", "-f", ...containers], { allowFailure: true });
  progress("removing data volumes");
  await docker(["volume", "rm", "-f", ...volumes]);
  if (settings.database) {
    progress(`emptying the external database ${settings.database.name}`);
    await psql(settings, emptyExternalDatabaseSql(new Date().toISOString()));
  }
  if (settings.media) {
    // Its prefix only: never the bucket, another prefix or another stack's objects.
    await emptyBucketPrefix(settings);
  }
}

/**
 * The announced backup with the scheduler stopped first (a scheduled backup must not run against the stack
 * while it is taken apart; stopped, not killed, so it records a run it was in). A backup that fails or is
 * refused starts it again: a reset that changed nothing leaves the scheduled backups running.
 */
async function backupWithSchedulerStopped(
  settings: Settings,
  backup: boolean,
): Promise<string | undefined> {
  const scheduler = settings.names.schedulerContainer;
  const wasRunning = (await inspectContainer(scheduler)).running;
  await docker(["stop", "-t", "30", scheduler], { allowFailure: true });
  try {
    return backup ? await resetBackup(settings) : undefined;
  } catch (err) {
    if (wasRunning) {
      await docker(["start", scheduler], { allowFailure: true });
    }
    throw err;
  }
}

/** What reset will do, said before it starts. */
function announce(settings: Settings, backup: boolean, containers: string[], volumes: string[]) {
  const external = settings.database;
  const media = bucketMedia(settings);
  say(
    `Will reset ${settings.stack}: ${backup ? "back up, then " : ""}remove containers ${containers.join(", ")} and volumes ${volumes.join(", ")}` +
      (external
        ? `, and empty the external database ${external.name} on ${external.host}:${external.port} (the schemas ${external.user} owns; the server, its roles and other schemas are left alone)`
        : "") +
      (media ? `, and empty the media ${mediaDescription(media)} (that prefix only)` : "") +
      ".",
  );
  say(`Kept: ${settings.names.backupsVolume} (backups and deployment history).`);
}

/**
 * The backup `reset` announced, taken whatever state the stack is in: postgres is started for it if it
 * is stopped. Never skipped silently: when there is data it cannot back up (media without a database to
 * go with it), the reset is refused before anything is removed.
 */
async function resetBackup(settings: Settings): Promise<string | undefined> {
  const n = settings.names;
  if (settings.database) {
    await requirePostgres(settings);
    if (await hasSchema(settings)) {
      return (await createBackup(settings, { reason: "pre-reset" }))?.entry.id;
    }
  }
  const postgres = await inspectContainer(n.postgresContainer);
  if (postgres.exists && !postgres.running && !settings.database) {
    progress(`starting ${n.postgresContainer} for the backup`);
    await startPostgres(settings);
  }
  if (postgres.exists && !settings.database && (await hasSchema(settings))) {
    const taken = await createBackup(settings, { reason: "pre-reset" });
    return taken?.entry.id;
  }
  if (!postgres.exists && !settings.database && (await volumeExists(n.postgresVolume))) {
    // A failed update may have removed the container (a replacement deletes it first): its volume still holds
    // the database, which no container can dump now.
    throw refuse(
      `Stack ${settings.stack}'s postgres container is missing but its volume ${n.postgresVolume} is there, so the announced backup cannot be taken. Nothing was changed.`,
      `Deploy it first (\`npm run up -- --stack ${settings.stack}\`) and reset again, or pass \`--no-backup\` to reset without a backup (an interrupted reset may have taken it already: \`edms-ops backups list --stack ${settings.stack}\`).`,
    );
  }
  if (await hasMediaFiles(settings)) {
    throw refuse(
      `Stack ${settings.stack} has media files but ${postgres.exists || settings.database ? "no database schema" : "no postgres container"} to back up with them, so the announced backup cannot be taken. Nothing was changed.`,
      `Deploy it first (\`npm run up -- --stack ${settings.stack}\`) and reset again, or pass \`--no-backup\` to reset without a backup.`,
    );
  }
  progress("nothing to back up: no database schema and no media files");
  return undefined;
}

/**
 * Decided by the stack file first, before any engine call (an unreachable host or a stray DOCKER_HOST must
 * not turn the refusal into a connection error), then by the labels on the volumes themselves.
 */
async function refuseProduction(settings: Settings): Promise<void> {
  const productionRefusal = () =>
    refuse(
      `reset is refused on production (stack \`${settings.stack}\`): production data is never reinitialised, whatever flags are given. ` +
        "Nothing was changed.",
      `To return to an earlier state, restore a backup: \`edms-ops backups list --stack ${settings.stack}\`, then ` +
        `\`edms-ops restore <id> --stack ${settings.stack} --confirm production\`.`,
    );
  if (settings.environment === "production") {
    throw productionRefusal();
  }
  await connect(settings);
  const n = settings.names;
  const labelled = await docker(
    [
      "volume",
      "inspect",
      "--format",
      '{{index .Labels "edms.environment"}}',
      n.postgresVolume,
      n.redisVolume,
      n.mediaVolume,
    ],
    { allowFailure: true },
  );
  if (labelled.stdout.split("\n").includes("production")) {
    throw productionRefusal();
  }
}
