import { Command } from "commander";
import { ensureRepository } from "../../store/catalog";
import { openStack } from "../../core/context";
import { refuse } from "../../core/errors";
import { storeKeysFromEnv } from "../../store/keys";
import { say } from "../../core/log";
import { withSession } from "../../engine/session";
import { storeDatabaseCredentials } from "../../database/credentials";

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
  await storeKeysFromEnv(settings, { dropOffsite: !settings.backup.offsite });
  if (await storeDatabaseCredentials(settings)) {
    say(
      `credentials for the external database written to ${settings.names.databaseCredentialsVolume}`,
    );
  }
  await withSession(settings, "backups init", (session) => ensureRepository(session));
  say(`backup repository of ${settings.stack} ready in ${settings.names.backupsVolume}`);
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
