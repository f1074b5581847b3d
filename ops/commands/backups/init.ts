import { Command } from "commander";
import { Settings } from "../../../model/settings";
import { volumeExists } from "../../engine/docker";
import { ensureRepository } from "../../store/catalog";
import { openStack } from "../../core/context";
import { refuse } from "../../core/errors";
import { storeKeysFromEnv } from "../../store/keys";
import { say } from "../../core/log";
import { withSession } from "../../engine/session";
import { storeDatabaseCredentials } from "../../database/credentials";
import { refuseSwitchOverVolumeMedia, storeMediaCredentials } from "../../backup/bucketCredentials";
import { claimPrefix } from "../../backup/bucket";

/** Marks an exported folder as ours: a restic repository holding exactly one edms backup. */

/** Keys from the hook's environment onto the host, and the repositories created: run by `pulumi up`. */
async function init(_opts: unknown, command: Command): Promise<void> {
  const settings = await openStack(command);
  if (!process.env.EDMS_RESTIC_PASSWORD) {
    throw refuse(
      `backups init needs the repository password in EDMS_RESTIC_PASSWORD (the \`backupPassword\` stack output); \`pulumi up\` passes it. Nothing was changed.`,
      `Run \`pulumi up --stack ${settings.stack}\`, or set EDMS_RESTIC_PASSWORD="$(pulumi stack output backupPassword --show-secrets --stack ${settings.stack})" and retry.`,
    );
  }
  if (settings.database && !process.env.EDMS_DATABASE_PASSWORD) {
    throw refuse(
      "backups init needs the external database's password in EDMS_DATABASE_PASSWORD (`edms:database.password`); `pulumi up` passes it. Nothing was changed.",
      `Run \`pulumi up --stack ${settings.stack}\`.`,
    );
  }
  if (settings.media && !process.env.EDMS_MEDIA_SECRET_KEY) {
    throw refuse(
      "backups init needs the bucket key's secret in EDMS_MEDIA_SECRET_KEY (`edms:media.secretAccessKey`); `pulumi up` passes it. Nothing was changed.",
      `Run \`pulumi up --stack ${settings.stack}\`.`,
    );
  }
  await refuseSwitchOverOwnDatabase(settings);
  await refuseSwitchOverVolumeMedia(settings);
  await storeKeysFromEnv(settings, { dropOffsite: !settings.backup.offsite });
  if (await storeDatabaseCredentials(settings)) {
    say(
      `credentials for the external database written to ${settings.names.databaseCredentialsVolume}`,
    );
  }
  if (await storeMediaCredentials(settings)) {
    say(`credentials for the bucket written to ${settings.names.mediaCredentialsVolume}`);
    await claimPrefix(settings);
  }
  await withSession(settings, "backups init", (session) => ensureRepository(session));
  say(`backup repository of ${settings.stack} ready in ${settings.names.backupsVolume}`);
}

/**
 * A stack that still has its own database (its postgres volume) is not switched to `edms:database` by a deploy:
 * the engine would remove that volume at the end of the update (dev and staging volumes are not retained),
 * and the external database starts empty. Refused here, the deploy's first hook, before anything is changed.
 */
async function refuseSwitchOverOwnDatabase(settings: Settings): Promise<void> {
  const volume = settings.names.postgresVolume;
  if (!settings.database || !(await volumeExists(volume))) {
    return;
  }
  throw refuse(
    `Stack ${settings.stack} still has its own database in volume ${volume}: with \`edms:database\` this deploy would remove that volume and start on the external database without its data. Nothing was changed.`,
    `Move the data first: \`edms-ops backup --stack ${settings.stack}\`, \`edms-ops backups export <id> --to DIR --plain --stack ${settings.stack}\`, load DIR/<id>/db.dump into the external database (\`pg_restore --no-owner --role ${settings.database.user} -d edms db.dump\`), then remove the old server (\`docker rm -f ${settings.names.postgresContainer} && docker volume rm ${volume}\`) and deploy again. Or remove \`edms:database\` to keep the stack on its own server.`,
  );
}

export function register(backups: Command): void {
  backups
    .command("init")
    .description(
      "Store the repository key, off-host credentials and an external database's credentials (from the environment) on the host and create the repository; run by `pulumi up`",
    )
    .addHelpText(
      "after",
      '\nExample:\n  EDMS_RESTIC_PASSWORD="$(pulumi stack output backupPassword --show-secrets)" edms-ops backups init --stack staging',
    )
    .action(init);
}
