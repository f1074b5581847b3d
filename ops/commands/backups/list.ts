import { Command } from "commander";
import { BackupEntry } from "../../store/restic";
import { listBackups } from "../../store/catalog";
import { openStack } from "../../core/context";
import { refuse } from "../../core/errors";
import { storeKeysFromEnv } from "../../store/keys";
import { say } from "../../core/log";
import { listOffsite } from "../../store/offsite";
import { isFutureDated, undoOf } from "../../store/retention";

/** What retention and the pickers treat apart, said on the backup's line. */
function flags(b: BackupEntry, now: string | number): string[] {
  return [
    ...(b.imported ? ["imported (kept until `backups forget`)"] : []),
    ...(b.bootstrap ? ["bootstrap only"] : []),
    ...(undoOf(b) ? [`undo of ${undoOf(b)}`] : []),
    ...(isFutureDated(b, now) ? ["DATED AFTER THE HOST'S CLOCK: never counted as newest"] : []),
  ];
}

function describe(b: BackupEntry, now: string | number): string {
  const release = b.target ? `${b.release ?? "-"} → ${b.target}` : (b.release ?? "-");
  const marks = flags(b, now);
  return (
    `${b.id}  ${b.reason.padEnd(12)} release ${release}  snapshot ${b.snapshot.slice(0, 8)}  ${b.time.replace(/\.\d+Z$/, "Z")}` +
    (marks.length ? `  [${marks.join("; ")}]` : "")
  );
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
    const now = Date.now();
    const futureDated = remote.filter((b) => isFutureDated(b, now)).map((b) => b.id);
    say(
      opts.json
        ? JSON.stringify({ offsite: remote, futureDated }, null, 2)
        : remote.map((b) => describe(b, now)).join("\n") || "No backups off the host yet.",
    );
    return;
  }
  const { complete, legacy, hostTime } = await listBackups(settings);
  const now = hostTime ?? Date.now();
  const pending = legacy.filter((l) => !complete.some((b) => b.id === l.id));
  if (opts.json) {
    const futureDated = complete.filter((b) => isFutureDated(b, now)).map((b) => b.id);
    say(JSON.stringify({ complete, legacy: pending, hostTime, futureDated }, null, 2));
    return;
  }
  if (complete.length === 0) {
    say(
      `No backups for stack ${settings.stack}. Take one with \`edms-ops backup --stack ${settings.stack}\`.`,
    );
  }
  complete.forEach((b) => say(describe(b, now)));
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
