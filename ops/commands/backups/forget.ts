import { Command } from "commander";
import { Settings } from "../../../model/settings";
import { sessionSnapshots } from "../../store/catalog";
import { connect, stackOf } from "../../core/context";
import { refuse } from "../../core/errors";
import { progress, say, warn } from "../../core/log";
import { OpsSession, withSession } from "../../engine/session";
import { checkBackupId } from "../../store/manifest";
import { readMarker } from "../../store/markers";
import { forgetOffsite } from "../../store/offsite";

/**
 * The one way a backup retention keeps for good (an import, a restore's undo) goes: explicitly, by id, in
 * the local repository and the off-host one.
 */
async function forget(id: string, opts: { confirm?: string }, command: Command): Promise<void> {
  const settings = stackOf(command);
  checkBackupId(id);
  if (settings.environment === "production" && opts.confirm !== "production") {
    throw refuse(
      `forgetting a backup on production deletes it for good and needs \`--confirm production\`${opts.confirm ? ` (got \`${opts.confirm}\`)` : ""}. Nothing was changed.`,
      `Run it again with \`--confirm production\` if ${id} is to go.`,
    );
  }
  await connect(settings);
  say(
    `Will forget ${id} in ${settings.names.backupsVolume}${settings.backup.offsite ? " and off the host" : ""}, then prune the data only it used.`,
  );
  await withSession(settings, "backups forget", async (session) => {
    await refuseInUse(settings, id);
    const local = await forgetLocally(session, id);
    const remote = settings.backup.offsite ? await forgetOffHost(session, id) : 0;
    if (!local && !remote) {
      throw refuse(
        `No backup ${id} in ${settings.names.backupsVolume}${settings.backup.offsite ? " nor off the host" : ""}. Nothing was changed.`,
        `List them with \`edms-ops backups list --stack ${settings.stack}\`.`,
      );
    }
  });
}

/** How many local snapshots of `id` were forgotten. */
async function forgetLocally(session: OpsSession, id: string): Promise<number> {
  const found = (await sessionSnapshots(session)).filter((b) => b.id === id);
  if (found.length) {
    progress(`forgetting ${id} (snapshot ${found.map((b) => b.snapshot.slice(0, 8)).join(", ")})`);
    await session.exec(
      `lrestic forget "$@" >/dev/null && lrestic prune --max-unused 10% >/dev/null`,
      found.map((b) => b.snapshot),
    );
    say(`forgot ${id} in ${session.settings.names.backupsVolume}`);
  }
  return found.length;
}

/** How many off-host snapshots of `id` were forgotten; an unreachable repository is a warning. */
async function forgetOffHost(session: OpsSession, id: string): Promise<number> {
  const { settings } = session;
  try {
    const count = await forgetOffsite(session, id);
    if (count) {
      say(`forgot ${id} off the host`);
    }
    return count;
  } catch (err) {
    warn(
      `${id} may still be off the host: ${(err as Error).message.split("\n").pop()}. ` +
        `Run \`edms-ops backups forget ${id} --stack ${settings.stack}\` again once it is reachable.`,
    );
    return 0;
  }
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
      "Delete one backup for good, locally and off the host: the way imported backups and a restore's undo go (retention keeps them)",
    )
    .option("--confirm <stack>", "required on production: --confirm production")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backups forget 2026-11-25T14-00-00Z-manual --stack staging\n  edms-ops backups forget 2026-11-25T14-00-00Z-pre-restore --stack production --confirm production",
    )
    .action(forget);
}
