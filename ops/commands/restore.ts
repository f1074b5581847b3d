import { Command } from "commander";
import { findBackup } from "../lib/backups";
import { openStack } from "../lib/context";
import { refuse } from "../lib/errors";
import { progress, say } from "../lib/log";
import { restoreBackup } from "../lib/restore";

export function register(program: Command): void {
  program
    .command("restore <id>")
    .description(
      "Verify a backup, back up the current state, then restore database (pg_restore --clean --if-exists) and media and check integrity",
    )
    .option("--confirm <stack>", "required on production: --confirm production")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops restore 2026-11-25T14-00-00Z-pre-deploy --stack staging\n  edms-ops restore 2026-11-25T14-00-00Z-pre-deploy --stack production --confirm production",
    )
    .action(async (id: string, opts: { confirm?: string }, command: Command) => {
      const settings = await openStack(command);
      if (settings.environment === "production" && opts.confirm !== "production") {
        throw refuse(
          `restore on production replaces live data and needs \`--confirm production\`${opts.confirm ? ` (got \`${opts.confirm}\`)` : ""}. Nothing was changed.`,
        );
      }
      const manifest = await findBackup(settings, id);
      say(
        `Will restore ${id} (release ${manifest.version ?? "-"}, taken ${manifest.createdAt}) onto ${settings.stack}:`,
      );
      say(
        "  verify it, back up the current state, stop web/worker, restore database and media, check integrity, start web/worker.",
      );
      const result = await restoreBackup(settings, manifest);
      progress("restore complete");
      say(`Restored ${id}: row counts and media checksums equal the manifest.`);
      if (!result.restarted) {
        say(
          `Web/worker are stopped: the data is at release ${manifest.version ?? "?"}'s state. Deploy that release to serve it:`,
        );
        say(
          `  pulumi config set edms:version ${manifest.version ?? settings.version} --stack ${settings.stack} && pulumi up --stack ${settings.stack}`,
        );
      }
      if (result.undoBackup) {
        say(
          `To undo, run: edms-ops restore ${result.undoBackup} --stack ${settings.stack}${settings.environment === "production" ? " --confirm production" : ""}`,
        );
      }
    });
}
