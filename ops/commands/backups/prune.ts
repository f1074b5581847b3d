import { Command } from "commander";
import { applyRetention } from "../../store/prune";
import { ensureRepository } from "../../store/catalog";
import { openStack } from "../../core/context";
import { refuse } from "../../core/errors";
import { say } from "../../core/log";
import { withSession } from "../../engine/session";
import { pruneOffsite } from "../../store/offsitePrune";
import { RESTIC_HOST_FLAG, RESTIC_HOST_HELP, requireOffsiteFor } from "./resticHost";

interface PruneFlags {
  readonly offsite?: boolean;
  readonly resticHost?: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
}

async function prune(opts: PruneFlags, command: Command): Promise<void> {
  requireOffsiteFor(opts);
  const settings = await openStack(command);
  if (opts.offsite) {
    if (!settings.backup.offsite) {
      throw refuse(
        `Stack ${settings.stack} has no \`edms:backup.offsite\`; there is no off-host repository to prune. Nothing was changed.`,
        `Prune the local repository instead: \`edms-ops backups prune --stack ${settings.stack}\`.`,
      );
    }
    const { decision, forgotten } = await pruneOffsite(
      settings,
      opts.dryRun === true,
      opts.resticHost,
    );
    if (opts.json) {
      say(
        JSON.stringify(
          {
            offsite: true,
            dryRun: opts.dryRun === true,
            kept: decision.keep.map((k) => ({ id: k.entry.id, why: k.why })),
            forget: decision.forget.map((b) => b.id),
            forgotten,
          },
          null,
          2,
        ),
      );
    } else if (!decision.forget.length) {
      say("nothing to prune off the host: every backup there is kept by the retention policy");
    } else {
      say(
        opts.dryRun
          ? `would forget off the host: ${decision.forget.map((b) => b.id).join(", ")}`
          : `forgot off the host: ${forgotten.join(", ")}`,
      );
    }
    return;
  }
  if (opts.dryRun) {
    throw refuse(
      "--dry-run goes with --offsite.",
      "Run it again with --offsite, or without --dry-run.",
    );
  }
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
      "Apply the retention policy now: keep the newest edms:backup.keep and the rollback targets. With --offsite, in the off-host repository, with credentials from the environment that may delete there (never the Docker host's)",
    )
    .option(
      "--offsite",
      "prune the off-host repository: needs EDMS_RESTIC_PASSWORD, EDMS_OFFSITE_DELETE_REPOSITORY and EDMS_OFFSITE_DELETE_ENV in the environment (a trusted machine or CI job); backups on the host never forget off the host",
    )
    .option(RESTIC_HOST_FLAG, RESTIC_HOST_HELP)
    .option("--dry-run", "with --offsite: list what would be forgotten, forget nothing")
    .option("--json", "print the decision as JSON (with --offsite)")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backups prune --stack staging\n" +
        '  EDMS_RESTIC_PASSWORD=… EDMS_OFFSITE_DELETE_REPOSITORY=… EDMS_OFFSITE_DELETE_ENV=\'{"AWS_ACCESS_KEY_ID":"…","AWS_SECRET_ACCESS_KEY":"…"}\' edms-ops backups prune --offsite --stack production',
    )
    .action(prune);
}
