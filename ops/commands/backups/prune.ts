import { Command } from "commander";
import { applyRetention } from "../../store/prune";
import { ensureRepository } from "../../store/catalog";
import { openStack } from "../../core/context";
import { say } from "../../core/log";
import { withSession } from "../../engine/session";

/** Marks an exported folder as ours: a restic repository holding exactly one edms backup. */

async function prune(_opts: unknown, command: Command): Promise<void> {
  const settings = await openStack(command);
  const forgotten = await withSession(settings, "backups prune", async (session) => {
    await ensureRepository(session);
    return applyRetention(session);
  });
  say(
    forgotten.length
      ? `forgot ${forgotten.join(", ")}`
      : "nothing to prune: every backup is kept by the retention policy",
  );
}

export function register(backups: Command): void {
  backups
    .command("prune")
    .description(
      "Apply the retention policy now: keep the newest edms:backup.keep and the rollback targets",
    )
    .addHelpText("after", "\nExample:\n  edms-ops backups prune --stack staging")
    .action(prune);
}
