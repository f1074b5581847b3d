import { Command } from "commander";
import { findBackup } from "../lib/backups";
import { openStack } from "../lib/context";
import { OpsError } from "../lib/errors";
import { say } from "../lib/log";
import { verifyBackup } from "../lib/verify";

export function register(program: Command): void {
  program
    .command("verify <id>")
    .description(
      "Check a backup: file checksums, a test-restore into a scratch database, row counts and media checksums against its manifest",
    )
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops verify 2026-11-25T14-00-00Z-pre-deploy --stack production",
    )
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      const settings = await openStack(command);
      const report = await verifyBackup(settings, await findBackup(settings, id));
      if (opts.json) {
        say(JSON.stringify(report, null, 2));
      }
      if (!report.ok) {
        throw new OpsError(
          `Backup ${id} FAILED verification:\n  - ${report.problems.join("\n  - ")}\nDo not restore it; choose another with \`edms-ops backups list\`.`,
        );
      }
      if (!opts.json) {
        say(
          `Backup ${id} verified: checksums, test-restore, row counts and media checksums match.`,
        );
      }
    });
}
