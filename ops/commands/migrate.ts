import { Command } from "commander";
import { openStack } from "../core/context";
import { manage } from "../database/django";
import { releaseReference } from "../../model/images";
import { progress, say } from "../core/log";
import { ensureAppRole } from "../database/appRole";
import { withSession } from "../engine/session";
import { refuseDuringRestore } from "../store/markers";
import { refuseProductionFreshStart } from "../backup/emptyDatabase";

export function register(program: Command): void {
  program
    .command("migrate")
    .description(
      "Apply migrations with the stack's release image (`manage.py migrate --noinput`) in a one-off container, then give the application role its rights on the tables; running containers keep serving",
    )
    .option("--version <release>", "image tag to migrate with (default: edms:version)")
    .addHelpText("after", "\nExample:\n  edms-ops migrate --stack staging")
    .action(async (opts: { version?: string }, command: Command) => {
      const settings = await openStack(command);
      const image = releaseReference(settings, opts.version);
      // Under the stack's lock: a restore's swap would end the migration's connection, or the migration
      // would change a restored database before the restore's integrity check. Never on half-restored data.
      await withSession(
        settings,
        "migrate",
        async (session) => {
          await refuseDuringRestore(session, "migrating");
          await refuseProductionFreshStart(settings, "Migrating it");
          progress(`migrating ${settings.stack} with ${image}`);
          await manage(settings, image, ["migrate", "--noinput"], `migrate with ${image}`);
          await ensureAppRole(settings);
        },
        { media: false },
      );
      say(`migrations applied with ${image}`);
    });
}
