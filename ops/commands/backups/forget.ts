import { Command } from "commander";
import { Settings } from "../../../model/settings";
import { sessionSnapshots } from "../../store/catalog";
import { connect, stackOf } from "../../core/context";
import { refuse } from "../../core/errors";
import { progress, say } from "../../core/log";
import { OpsSession, withSession } from "../../engine/session";
import { checkBackupId } from "../../store/manifest";
import { readMarker } from "../../store/markers";
import { forgetOffsiteById } from "../../store/offsitePrune";
import { FORGET_AND_PRUNE } from "../../store/restic";
import { RESTIC_HOST_FLAG, RESTIC_HOST_HELP, requireOffsiteFor } from "./resticHost";

/**
 * The one way a backup retention keeps for good (an import, a restore's undo) goes: explicitly, by id. On
 * the host it forgets in the local repository only: the host's off-host credentials are append-only.
 * `--offsite` forgets it off the host instead, with credentials that may delete taken from the environment
 * (a trusted machine or CI job, as `backups prune --offsite`).
 */
async function forget(
  id: string,
  opts: { confirm?: string; offsite?: boolean; resticHost?: string },
  command: Command,
): Promise<void> {
  requireOffsiteFor(opts);
  const settings = stackOf(command);
  checkBackupId(id);
  if (settings.environment === "production" && opts.confirm !== "production") {
    throw refuse(
      `forgetting a backup on production deletes it for good and needs \`--confirm production\`${opts.confirm ? ` (got \`${opts.confirm}\`)` : ""}. Nothing was changed.`,
      `Run it again with \`--confirm production\` if ${id} is to go.`,
    );
  }
  await connect(settings);
  if (opts.offsite) {
    await refuseInUse(settings, id);
    if (!(await forgetOffsiteById(settings, id, opts.resticHost))) {
      throw refuse(
        `No backup ${id} off the host. Nothing was changed.`,
        `List them with \`edms-ops backups list --offsite --stack ${settings.stack}\`.`,
      );
    }
    say(`forgot ${id} off the host`);
    return;
  }
  say(`Will forget ${id} in ${settings.names.backupsVolume}, then prune the data only it used.`);
  await withSession(settings, "backups forget", async (session) => {
    await refuseInUse(settings, id);
    if (!(await forgetLocally(session, id))) {
      throw refuse(
        `No backup ${id} in ${settings.names.backupsVolume}. Nothing was changed.`,
        `List them with \`edms-ops backups list --stack ${settings.stack}\`.`,
      );
    }
  });
  if (settings.backup.offsite) {
    say(
      `Off the host it stays (the host cannot delete there): forget it there with \`edms-ops backups forget ${id} --offsite --stack ${settings.stack}\` where credentials that may delete are kept.`,
    );
  }
}

/** How many local snapshots of `id` were forgotten. */
async function forgetLocally(session: OpsSession, id: string): Promise<number> {
  const found = (await sessionSnapshots(session)).filter((b) => b.id === id);
  if (found.length) {
    progress(`forgetting ${id} (snapshot ${found.map((b) => b.snapshot.slice(0, 8)).join(", ")})`);
    await session.exec(
      `lrestic ${FORGET_AND_PRUNE} "$@" >/dev/null`,
      found.map((b) => b.snapshot),
    );
    say(`forgot ${id} in ${session.settings.names.backupsVolume}`);
  }
  return found.length;
}

/** The target or the undo of an unfinished restore stays until the restore is finished or undone. */
async function refuseInUse(settings: Settings, id: string): Promise<void> {
  const marker = await readMarker(settings, "restore");
  if (marker && (marker.id === id || marker.undo === id)) {
    throw refuse(
      `${id} is ${marker.id === id ? "the backup" : "the undo"} of an unfinished restore. Nothing was changed.`,
      `Finish the restore first (\`edms-ops status --stack ${settings.stack}\` says how), then forget it.`,
    );
  }
}

export function register(backups: Command): void {
  backups
    .command("forget <id>")
    .description(
      "Delete one backup for good, locally (or with --offsite off the host): the way imported backups and a restore's undo go (retention keeps them)",
    )
    .option("--confirm <stack>", "required on production: --confirm production")
    .option(
      "--offsite",
      "forget it off the host, with credentials that may delete from EDMS_RESTIC_PASSWORD, EDMS_OFFSITE_DELETE_REPOSITORY, EDMS_OFFSITE_DELETE_ENV",
    )
    .option(RESTIC_HOST_FLAG, RESTIC_HOST_HELP)
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backups forget 2026-11-25T14-00-00Z-manual --stack staging\n  edms-ops backups forget 2026-11-25T14-00-00Z-pre-restore --stack production --confirm production",
    )
    .action(forget);
}
