import { Command } from "commander";
import * as fs from "fs";
import * as path from "path";
import { Settings } from "../../../model/settings";
import { BackupEntry } from "../../store/restic";
import { ensureRepository, sessionSnapshots } from "../../store/catalog";
import { openStack } from "../../core/context";
import { pipeCommands, run } from "../../engine/docker";
import { failure, refuse } from "../../core/errors";
import {
  checkLegacyStack,
  importLegacyDir,
  LEGACY_FILES,
  parseLegacyManifest,
} from "../../store/legacy";
import { z } from "zod";
import { parseJson, tryParseJson } from "../../core/json";
import { ID_PATTERN } from "../../store/manifest";
import { EXPORT_MARKER } from "./export";
import { PLAIN_FORMAT } from "../../backup/plainFormat";
import { say } from "../../core/log";
import { PASSWORD_FILE } from "../../store/restic";
import { OpsSession, withSession } from "../../engine/session";
import { SCRATCH } from "../../store/layout";

/** Streams a local folder into a scratch folder of the backups volume. */
async function upload(session: OpsSession, dir: string, scratch: string, files: string[]) {
  const [sent, received] = await pipeCommands(
    (stdout, signal) =>
      run("tar", ["-C", dir, "-cf", "-", ...files], { stdout, allowFailure: true, signal }),
    (input) =>
      session.exec(`rm -rf "$1" && mkdir -p "$1" && tar -xf - -C "$1"`, [scratch], {
        input,
        allowFailure: true,
      }),
  );
  if (sent.code !== 0 || received.code !== 0) {
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
    throw failure(
      `import failed, nothing kept: ${(received.stderr || sent.stderr).trim()}`,
      "Fix the cause shown, then run the same `edms-ops backups import` again.",
    );
  }
}

async function importBackup(dir: string, _opts: unknown, command: Command): Promise<void> {
  // What the folder is, is decided before the engine is reached: a wrong folder is refused even offline.
  const source = path.resolve(dir);
  const legacyManifest = path.join(source, "manifest.json");
  const marker = path.join(source, EXPORT_MARKER);
  if (!fs.existsSync(legacyManifest) && !fs.existsSync(marker)) {
    throw refuse(
      `${source} holds neither ${EXPORT_MARKER} nor manifest.json: not an exported backup. Nothing was imported.`,
      "Pass the folder `edms-ops backups export <id> --to DIR` wrote (DIR itself).",
    );
  }
  refusePlainExport(legacyManifest);
  const settings = await openStack(command);
  const imported = await withSession(settings, "backups import", async (session) => {
    await ensureRepository(session);
    const present = await sessionSnapshots(session);
    return fs.existsSync(legacyManifest)
      ? importLegacyFolder(session, source, present)
      : importExported(session, source, present);
  });
  say(
    `imported ${imported} into ${settings.names.backupsVolume}. Check it with \`edms-ops verify ${imported} --stack ${settings.stack}\`.`,
  );
}

/**
 * A plain export has a first-release backup's file names (manifest.json, db.dump, media.tar) but is meant for
 * other tools: said plainly instead of "manifest.json is corrupt".
 */
function refusePlainExport(manifestFile: string): void {
  const text = fs.existsSync(manifestFile) ? fs.readFileSync(manifestFile, "utf8") : "";
  const format = tryParseJson(text, z.looseObject({ format: z.unknown() }));
  if (format.ok && format.value.format === PLAIN_FORMAT) {
    throw refuse(
      `${path.dirname(manifestFile)} is a plain export (${PLAIN_FORMAT}), for restoring without edms-ops. Nothing was imported.`,
      "Import the restic export instead (`edms-ops backups export <id> --to DIR`, without --plain), or restore this one by hand as its manifest.json's howToRestore says.",
    );
  }
}

function refuseDuplicate(settings: Settings, present: readonly BackupEntry[], id: string): void {
  if (present.some((b) => b.id === id)) {
    throw refuse(
      `Backup ${id} is already in ${settings.names.backupsVolume}. Nothing was imported.`,
      `Use it as it is: \`edms-ops verify ${id} --stack ${settings.stack}\`.`,
    );
  }
}

export function register(backups: Command): void {
  backups
    .command("import <dir>")
    .description(
      "Bring an exported backup (or a first-release backup folder) into the stack's repository; refused if it is damaged or another stack's",
    )
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops backups import /mnt/offsite/2026-11-25T14-00-00Z-manual --stack production",
    )
    .action(importBackup);
}

/** A first release's backup folder (manifest.json, db.dump, media.tar): checked, then made a snapshot. */
async function importLegacyFolder(
  session: OpsSession,
  source: string,
  present: readonly BackupEntry[],
): Promise<string> {
  const { settings } = session;
  const manifest = parseLegacyManifest(fs.readFileSync(path.join(source, "manifest.json"), "utf8"));
  checkLegacyStack(manifest, settings.stack);
  refuseDuplicate(settings, present, manifest.id);
  const scratch = SCRATCH.import(process.pid);
  await upload(session, source, scratch, ["manifest.json", ...LEGACY_FILES]);
  try {
    await importLegacyDir(session, scratch, manifest);
  } finally {
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
  }
  return manifest.id;
}

/** A folder `backups export` wrote: a restic repository of its own, read-checked, then copied in. */
async function importExported(
  session: OpsSession,
  source: string,
  present: readonly BackupEntry[],
): Promise<string> {
  const { settings } = session;
  const marker = path.join(source, EXPORT_MARKER);
  const { id } = parseJson(
    fs.readFileSync(marker, "utf8"),
    z.looseObject({ id: z.string().regex(ID_PATTERN) }),
    `${marker} (the export's marker)`,
  );
  refuseDuplicate(settings, present, id);
  const scratch = SCRATCH.import(process.pid);
  const files = fs.readdirSync(source).filter((f) => f !== EXPORT_MARKER);
  await upload(session, source, scratch, files);
  try {
    const check = await session.exec(
      `restic --no-cache -r "$1" --password-file ${PASSWORD_FILE} check --read-data >/dev/null`,
      [scratch],
      { allowFailure: true },
    );
    if (check.code !== 0) {
      throw /wrong password or no key found/i.test(check.stderr)
        ? failure(
            `${source} is a backup of another stack (its repository does not open with ${settings.stack}'s backup password). Nothing was imported.`,
            "Import it into the stack it came from (its --stack).",
          )
        : failure(
            `The backup copy in ${source} is corrupt: ${check.stderr.trim().split("\n").pop()}. Nothing was imported.`,
            "Export the backup again from its source and import that copy.",
          );
    }
    await session.exec(
      `lrestic copy --from-repo "$1" --from-password-file ${PASSWORD_FILE} --tag edms >/dev/null`,
      [scratch],
    );
  } finally {
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
  }
  return id;
}
