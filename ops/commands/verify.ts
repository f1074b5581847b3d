import { Command } from "commander";
import { pickListed, sessionSnapshots } from "../store/catalog";
import { checkBackupId } from "../store/manifest";
import { openStack } from "../core/context";
import { failure } from "../core/errors";
import { say } from "../core/log";
import { withSession } from "../engine/session";
import { verifyBackup } from "../backup/verify";
import { besideCheck } from "../backup/repositoryCheck";

export function register(program: Command): void {
  program
    .command("verify <id>")
    .description(
      "Check a backup: restic check of the repository, the dump test-restored into a scratch database (sha256 and row counts against the manifest), every media blob read back",
    )
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops verify 2026-11-25T14-00-00Z-pre-deploy --stack production",
    )
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      const settings = await openStack(command);
      checkBackupId(id);
      // Looked up in the session, whose container lists the repository anyway, beside the repository's check.
      const report = await withSession(settings, `verify ${id}`, async (session) => {
        const entry = await besideCheck(session, id, async () =>
          pickListed(settings, await sessionSnapshots(session), id),
        );
        return verifyBackup(session, entry);
      });
      if (opts.json) {
        say(JSON.stringify(report, null, 2));
      }
      if (!report.ok) {
        throw failure(
          `Backup ${id} FAILED verification:\n  - ${report.problems.join("\n  - ")}`,
          `Do not restore it; choose another with \`edms-ops backups list --stack ${settings.stack}\`.`,
        );
      }
      if (!opts.json) {
        say(
          `Backup ${id} verified: repository check, test-restore, dump checksum, row counts and media read back.`,
        );
      }
    });
}
