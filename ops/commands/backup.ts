import { Command } from "commander";
import { createBackup } from "../lib/backups";
import { openStack } from "../lib/context";
import { say } from "../lib/log";

export function register(program: Command): void {
  program
    .command("backup")
    .description(
      "Back up the database (pg_dump) and media as one restic snapshot in the stack's repository (media incremental), apply the retention policy, copy off the host",
    )
    .option("--reason <reason>", "why it was taken; part of the id (lowercase, dashes)", "manual")
    .option(
      "--target-version <version>",
      "release about to be deployed (set by the pre-deploy hook)",
    )
    .option("--json", "print the manifest as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backup --stack production --reason before-upgrade\n  edms-ops backup --stack staging --json",
    )
    .action(
      async (
        opts: { reason: string; targetVersion?: string; json?: boolean },
        command: Command,
      ) => {
        const settings = await openStack(command);
        const result = await createBackup(settings, {
          reason: opts.reason,
          targetVersion: opts.targetVersion,
        });
        if (opts.json) {
          say(JSON.stringify(result ?? { nothingToBackUp: true }, null, 2));
        } else {
          say(result ? result.entry.id : "nothing to back up: the database has no schema yet");
        }
      },
    );
}
