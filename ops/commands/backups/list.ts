import { Command } from "commander";
import { BackupEntry } from "../../store/restic";
import { listBackups } from "../../store/catalog";
import { openStack } from "../../core/context";
import { refuse } from "../../core/errors";
import { storeKeysFromEnv } from "../../store/keys";
import { say } from "../../core/log";
import { listOffsite } from "../../store/offsite";

/** Marks an exported folder as ours: a restic repository holding exactly one edms backup. */

function describe(b: BackupEntry): string {
  const release = b.target ? `${b.release ?? "-"} → ${b.target}` : (b.release ?? "-");
  return `${b.id}  ${b.reason.padEnd(12)} release ${release}  snapshot ${b.snapshot.slice(0, 8)}  ${b.time.replace(/\.\d+Z$/, "Z")}`;
}

async function list(opts: { json?: boolean; offsite?: boolean }, command: Command): Promise<void> {
  const settings = await openStack(command);
  if (opts.offsite) {
    if (!settings.backup.offsite) {
      throw refuse(
        `Stack ${settings.stack} has no \`edms:backup.offsite\`; there is no off-host repository to list.`,
        `Set one with \`pulumi config set --secret --path edms:backup.offsite.repository <url> --stack ${settings.stack}\`, or list local backups: \`edms-ops backups list --stack ${settings.stack}\`.`,
      );
    }
    await storeKeysFromEnv(settings);
    const { backups: remote } = await listOffsite(settings);
    say(
      opts.json
        ? JSON.stringify({ offsite: remote }, null, 2)
        : remote.map(describe).join("\n") || "No backups off the host yet.",
    );
    return;
  }
  const { complete, legacy } = await listBackups(settings);
  const pending = legacy.filter((l) => !complete.some((b) => b.id === l.id));
  if (opts.json) {
    say(JSON.stringify({ complete, legacy: pending }, null, 2));
    return;
  }
  if (complete.length === 0) {
    say(
      `No backups for stack ${settings.stack}. Take one with \`edms-ops backup --stack ${settings.stack}\`.`,
    );
  }
  complete.forEach((b) => say(describe(b)));
  for (const l of pending) {
    say(`${l.id}  first-release format${l.problem ? `, DAMAGED: ${l.problem}` : ""}`);
  }
  if (pending.some((l) => !l.problem)) {
    say(
      `Import first-release backups with \`edms-ops backups import-legacy --stack ${settings.stack}\`.`,
    );
  }
}

export function register(backups: Command): void {
  backups
    .command("list")
    .description(
      "List backups (oldest first): in the stack's repository, or with --offsite in the off-host one",
    )
    .option("--json", "print as JSON")
    .option("--offsite", "list the off-host repository (edms:backup.offsite)")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backups list --stack production\n  edms-ops backups list --offsite --stack production",
    )
    .action(list);
}
