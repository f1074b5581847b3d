import { Command } from "commander";
import { Settings } from "../../model/settings";
import { BackupEntry } from "../store/restic";
import { checkBackupId } from "../store/manifest";
import { pickBackup, pickListed, sessionSnapshots } from "../store/catalog";
import { fetchFromOffsite } from "../store/offsite";
import { connect, stackOf } from "../core/context";
import { refuse } from "../core/errors";
import { progress, say } from "../core/log";
import { restoreBackup } from "../backup/restore";
import { besideCheck } from "../backup/repositoryCheck";
import { OpsSession } from "../engine/session";
import { confirmFlag } from "../store/markers";

export function register(program: Command): void {
  program
    .command("restore <id>")
    .description(
      "Check a backup, restore its database beside the live one, back up the current state, swap the database in, restore media and check integrity",
    )
    .option("--confirm <stack>", "required on production: --confirm production")
    .option(
      "--from <where>",
      "`offsite`: take the backup from the off-host repository (disaster recovery on a new host)",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops restore 2026-11-25T14-00-00Z-pre-deploy --stack staging\n  edms-ops restore 2026-11-25T14-00-00Z-pre-deploy --stack production --confirm production\n  edms-ops restore 2026-11-25T14-00-00Z-manual --from offsite --stack production --confirm production",
    )
    .action(restoreCommand);
}

async function restoreCommand(
  id: string,
  opts: { confirm?: string; from?: string },
  command: Command,
): Promise<void> {
  const settings = stackOf(command);
  refuseRestoreOptions(settings, id, opts);
  checkBackupId(id);
  await connect(settings);
  const result = await restoreBackup(settings, `restore ${id}`, backupIn(settings, id, opts.from));
  progress("restore complete");
  say(`Restored ${id}: row counts and media files equal the backup.`);
  if (!result.restarted) {
    say(
      `Web/worker are stopped: the data is at the state of backup ${id}. Deploy its release to serve it:`,
    );
    say(
      `  pulumi config set edms:version ${result.release ?? settings.version} --stack ${settings.stack} && pulumi up --stack ${settings.stack}`,
    );
  }
  if (result.resumed) {
    say(
      `This finished the interrupted restore of ${result.resumed}; ${result.wentBack ? "the stack is back at the state before it" : result.undoBackup ? `its undo, taken before the first attempt, is ${result.undoBackup}` : "there was no data before it to undo"}.`,
    );
  }
  if (result.undoBackup) {
    say(
      `To undo, run: edms-ops restore ${result.undoBackup} --stack ${settings.stack}${confirmFlag(settings)}`,
    );
  }
}

/**
 * The backup, looked up in the restore's session, whose container lists the repository anyway (not in a
 * helper container of its own before it); with --from, fetched from the off-host repository there first.
 */
function backupIn(
  settings: Settings,
  id: string,
  from: string | undefined,
): (session: OpsSession) => Promise<BackupEntry> {
  if (!from) {
    // Beside the repository's check, which the restore's verification then takes. Not with --from: the
    // fetch below writes the repository, and the check is of what it holds after.
    return async (session) => {
      const found = await besideCheck(session, id, async () =>
        pickListed(settings, await sessionSnapshots(session), id),
      );
      sayPlan(`${id} (release ${found.release ?? "-"}, taken ${found.time})`, settings);
      return found;
    };
  }
  sayPlan(`${id} from the off-host repository`, settings);
  return async (session) => {
    // A re-run of an interrupted restore finds it fetched already: the off-host repository (unreachable
    // now, or pruned since) is not asked again. A snapshot is in the local one only once it was copied whole.
    // A local repository this host cannot open yet (no key: a new host) is read as empty, and the fetch
    // below says what is missing.
    const local = await sessionSnapshots(session).catch((): BackupEntry[] => []);
    if (local.some((b) => b.id === id)) {
      progress(`${id} is in the local repository already (fetched before): not fetched again`);
      return pickBackup(settings, local, [], id);
    }
    await fetchFromOffsite(session, id);
    return pickBackup(settings, await sessionSnapshots(session), [], id);
  };
}

function sayPlan(what: string, settings: Settings): void {
  say(`Will restore ${what} onto ${settings.stack}:`);
  say(
    "  check it, restore its database beside the live one and check it, stop web/worker, back up the current state, swap the database in, restore media, check integrity, start web/worker.",
  );
}

/** Refusals from the stack file and the flags alone, before any engine call. */
function refuseRestoreOptions(
  settings: Settings,
  id: string,
  opts: { confirm?: string; from?: string },
): void {
  if (settings.environment === "production" && opts.confirm !== "production") {
    throw refuse(
      `restore on production replaces live data and needs \`--confirm production\`${opts.confirm ? ` (got \`${opts.confirm}\`)` : ""}. Nothing was changed.`,
      `Run it again with \`--confirm production\` if ${id} is the state to return to.`,
    );
  }
  if (opts.from !== undefined && opts.from !== "offsite") {
    throw refuse(
      `--from takes \`offsite\` (got \`${opts.from}\`). Nothing was changed.`,
      "Pass `--from offsite`, or leave --from out for the local repository.",
    );
  }
  if (opts.from && !settings.backup.offsite) {
    throw refuse(
      `--from offsite needs \`edms:backup.offsite\` in the stack file of ${settings.stack}. Nothing was changed.`,
      `Set it with \`pulumi config set --secret --path edms:backup.offsite.repository <url> --stack ${settings.stack}\`.`,
    );
  }
}
