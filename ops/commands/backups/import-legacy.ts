import { Command } from "commander";
import { ensureRepository, sessionSnapshots } from "../../store/catalog";
import { openStack } from "../../core/context";
import { importLegacyDir, LegacyManifest, listLegacy } from "../../store/legacy";
import { progress, say } from "../../core/log";
import { withSession } from "../../engine/session";
import { BACKUPS_DIR, legacyDir } from "../../store/layout";

/** Marks an exported folder as ours: a restic repository holding exactly one edms backup. */

async function importLegacy(opts: { deleteImported?: boolean }, command: Command): Promise<void> {
  const settings = await openStack(command);
  const legacy = await listLegacy(settings);
  const done = await withSession(settings, "backups import-legacy", async (session) => {
    await ensureRepository(session);
    const present = new Set((await sessionSnapshots(session)).map((b) => b.id));
    const imported: string[] = [];
    for (const entry of legacy) {
      if (entry.problem || !entry.manifest) {
        say(`${entry.id}: not imported, ${entry.problem}`);
        continue;
      }
      if (!present.has(entry.id)) {
        await importLegacyDir(session, legacyDir(entry.id), entry.manifest as LegacyManifest);
        imported.push(entry.id);
      }
      if (opts.deleteImported) {
        await session.exec(`rm -rf "${BACKUPS_DIR}/$1"`, [entry.id]);
        progress(`removed the first-release copy of ${entry.id}`);
      }
    }
    return imported;
  });
  say(
    done.length
      ? `imported ${done.join(", ")}`
      : "nothing to import: every first-release backup is in the repository",
  );
}

export function register(backups: Command): void {
  backups
    .command("import-legacy")
    .description(
      "Import the first release's backups (<id>/manifest.json folders in the backups volume) into the repository",
    )
    .option(
      "--delete-imported",
      "remove each first-release folder once its backup is in the repository",
    )
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops backups import-legacy --stack production --delete-imported",
    )
    .action(importLegacy);
}
