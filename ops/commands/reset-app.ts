import { Command } from "commander";
import { createBackup, runningVersion } from "../lib/backups";
import { migrationState, requirePostgres } from "../lib/database";
import { openStack, requireConfirm } from "../lib/context";
import { manage, releaseImage } from "../lib/django";
import { docker, stopRunning } from "../lib/docker";
import { OpsError } from "../lib/errors";
import { progress, say } from "../lib/log";
import { appContainers } from "../lib/services";

export function register(program: Command): void {
  program
    .command("reset-app <app>")
    .description(
      "Empty one Django app: back up, `migrate <app> zero`, `migrate <app>`. Other apps' data is kept",
    )
    .option("--confirm <stack>", "the stack name again (on production: --confirm production)")
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops reset-app documents --stack staging --confirm staging",
    )
    .action(async (app: string, opts: { confirm?: string }, command: Command) => {
      const settings = await openStack(command);
      if (!/^[a-z_][a-z0-9_]*$/.test(app)) {
        throw new OpsError(
          `\`${app}\` is not a Django app label (lowercase letters, digits, underscores).`,
          2,
        );
      }
      await requirePostgres(settings);
      const apps = await migrationState(settings);
      if (!(app in apps)) {
        throw new OpsError(
          `Unknown app \`${app}\`: stack ${settings.stack} has migrations for ${Object.keys(apps).join(", ") || "no apps"}. Nothing was changed.`,
          2,
        );
      }
      requireConfirm(settings, opts.confirm, `reset-app ${app}`);
      const image = releaseImage(settings, (await runningVersion(settings)) ?? settings.version);
      say(
        `Will reset app ${app} on ${settings.stack}: back up, stop web/worker, migrate ${app} zero (drops its tables), migrate ${app}, start web/worker.`,
      );
      const backup = (await createBackup(settings, { reason: `pre-reset-app` }))?.entry;
      const running = await stopRunning(await appContainers(settings));
      try {
        progress(`migrate ${app} zero`);
        await manage(settings, image, ["migrate", app, "zero", "--noinput"], `migrate ${app} zero`);
        progress(`migrate ${app}`);
        await manage(settings, image, ["migrate", app, "--noinput"], `migrate ${app}`);
      } finally {
        if (running.length) {
          await docker(["start", ...running]);
        }
      }
      say(`App ${app} reset; other apps untouched.`);
      if (backup) {
        say(
          `To undo, run: edms-ops restore ${backup.id} --stack ${settings.stack}${settings.environment === "production" ? " --confirm production" : ""}`,
        );
      }
    });
}
