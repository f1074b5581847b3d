import { Command } from "commander";
import { openStack } from "../../core/context";
import { refuse } from "../../core/errors";
import { say } from "../../core/log";
import { unlockOffsite } from "../../store/offsite";

async function unlock(opts: { offsite?: boolean; all?: boolean }, command: Command): Promise<void> {
  const settings = await openStack(command);
  if (!opts.offsite) {
    throw refuse(
      "`backups unlock` clears restic locks in the off-host repository and needs --offsite: locks in the local repository are cleared by every operation that takes the stack lock. Nothing was changed.",
      `Run \`edms-ops backups unlock --offsite --stack ${settings.stack}\`.`,
    );
  }
  if (!settings.backup.offsite) {
    throw refuse(
      `Stack ${settings.stack} has no \`edms:backup.offsite\`. Nothing was changed.`,
      "Set `edms:backup.offsite` first.",
    );
  }
  const left = await unlockOffsite(settings, opts.all === true);
  say(
    left.length
      ? `${left.length} lock(s) left off the host (not stale by restic's rule: refreshed within 30 min); \`edms-ops status --stack ${settings.stack}\` shows them`
      : "no restic lock left in the off-host repository",
  );
}

export function register(backups: Command): void {
  backups
    .command("unlock")
    .description(
      "Remove restic locks in the off-host repository: the stale ones (`restic unlock`), or with --all every one, once you checked no other host is working there",
    )
    .option("--offsite", "the off-host repository (required)")
    .option(
      "--all",
      "remove every lock (`restic unlock --remove-all`): only once you checked that no other host (an old host of this stack, the off-host prune job) is working on the repository",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backups unlock --offsite --stack production\n  edms-ops backups unlock --offsite --all --stack production",
    )
    .action(unlock);
}
