import { Command } from "commander";
import * as fs from "fs";
import * as path from "path";
import { Settings } from "../../../model/settings";
import { BackupEntry } from "../../store/restic";
import { ensureRepository, sessionSnapshots } from "../../store/catalog";
import { connect, stackOf } from "../../core/context";
import { failure, refuse } from "../../core/errors";
import { checkLegacyStack, importLegacyDir, parseLegacyManifest } from "../../store/legacy";
import { z } from "zod";
import { tryParseJson } from "../../core/json";
import { ID_PATTERN } from "../../store/manifest";
import {
  EXPORT_MARKER,
  ExportFolder,
  inspectExportFolder,
  LEGACY_LAYOUT,
  packFolder,
} from "../../store/exported";
import { say } from "../../core/log";
import { PLAIN_FORMAT } from "../../backup/plainFormat";
import { parseSnapshots, PASSWORD_FILE } from "../../store/restic";
import { OpsSession, withSession } from "../../engine/session";
import { SCRATCH } from "../../store/layout";
import { requireBackupsRoom } from "../../backup/space";

/**
 * Streams the checked files of a local folder into a scratch folder of the backups volume. The tar is made
 * in-process (ops/store/exported.ts) and unpacked without owners or modes from the archive.
 */
async function upload(session: OpsSession, dir: string, scratch: string, files: readonly string[]) {
  const packed = packFolder(dir, files);
  const received = await session.exec(
    `rm -rf "$1" && mkdir -p "$1" && tar -xf - -C "$1" --no-same-owner --no-same-permissions`,
    [scratch],
    { input: packed.stream, allowFailure: true },
  );
  const cause = packed.failed()?.message ?? (received.code !== 0 ? received.stderr.trim() : "");
  if (cause) {
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
    throw failure(
      `import failed, nothing kept: ${cause}`,
      "Fix the cause shown, then run the same `edms-ops backups import` again.",
    );
  }
}

async function importBackup(dir: string, _opts: unknown, command: Command): Promise<void> {
  const source = path.resolve(dir);
  // Checked before anything else, locally: a hostile folder is refused before any engine call.
  refusePlainExport(path.join(source, "manifest.json"));
  const folder = inspectExportFolder(source);
  const settings = stackOf(command);
  const marker = folder.kind === "restic" ? readExportMarker(source, settings.stack) : undefined;
  await connect(settings);
  const imported = await withSession(settings, "backups import", async (session) => {
    await ensureRepository(session);
    const present = await sessionSnapshots(session);
    return marker
      ? importExported(session, source, folder, marker, present)
      : importLegacyFolder(session, source, present);
  });
  say(
    `imported ${imported} into ${settings.names.backupsVolume}. Check it with \`edms-ops verify ${imported} --stack ${settings.stack}\`.`,
  );
}

const ExportMarkerSchema = z.looseObject({
  format: z.literal("restic"),
  id: z.string().regex(ID_PATTERN),
  stack: z.string(),
});
type ExportMarker = z.output<typeof ExportMarkerSchema>;

/** The marker names the one backup to bring in and the stack it belongs to. */
function readExportMarker(source: string, stack: string): ExportMarker {
  const file = path.join(source, EXPORT_MARKER);
  const parsed = tryParseJson(fs.readFileSync(file, "utf8"), ExportMarkerSchema);
  if (!parsed.ok) {
    throw refuse(
      `${file} is not an export marker edms-ops wrote (${parsed.problem}). Nothing was imported.`,
      "Pass the folder `edms-ops backups export <id> --to DIR` wrote (DIR/<id>), as it was written.",
    );
  }
  if (parsed.value.stack !== stack) {
    throw refuse(
      `${source} holds a backup of stack ${parsed.value.stack}, not ${stack}. Nothing was imported.`,
      `Import it into the stack it came from (\`--stack ${parsed.value.stack}\`).`,
    );
  }
  return parsed.value;
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

/** Room on the backups volume for `copies` times the folder's files (sizes as lstat gives them: nothing followed). */
async function requireImportRoom(
  session: OpsSession,
  source: string,
  files: readonly string[],
  copies: number,
  id: string,
): Promise<void> {
  const bytes = files.reduce((sum, file) => sum + fs.lstatSync(path.join(source, file)).size, 0);
  await requireBackupsRoom(
    session,
    bytes * copies,
    "the imported files and what is made of them",
    `the import of ${id}`,
  );
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
  // The folder, its media.tar unpacked, and the snapshot made of them.
  await requireImportRoom(session, source, [...LEGACY_LAYOUT], 3, manifest.id);
  const scratch = SCRATCH.import(process.pid);
  await upload(session, source, scratch, [...LEGACY_LAYOUT]);
  try {
    await importLegacyDir(session, scratch, manifest);
  } finally {
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
  }
  return manifest.id;
}

/** A folder `backups export` wrote: a restic repository of its own, read-checked, then one snapshot copied in. */
async function importExported(
  session: OpsSession,
  source: string,
  folder: ExportFolder,
  marker: ExportMarker,
  present: readonly BackupEntry[],
): Promise<string> {
  const { settings } = session;
  refuseDuplicate(settings, present, marker.id);
  // The folder, and the packs copied from it into the repository.
  await requireImportRoom(session, source, folder.files, 2, marker.id);
  const scratch = SCRATCH.import(process.pid);
  await upload(session, source, scratch, folder.files);
  try {
    await checkExportedRepository(session, source, scratch);
    const snapshot = await markedSnapshot(session, source, scratch, marker);
    // Tagged `imported` here, before any off-host copy: retention keeps it until `backups forget`.
    await session.exec(
      `lrestic copy --from-repo "$1" --from-password-file ${PASSWORD_FILE} "$2" >/dev/null && lrestic tag --tag "edms,id=$3" --add imported >/dev/null`,
      [scratch, snapshot, marker.id],
    );
  } finally {
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
  }
  return marker.id;
}

/** `restic check --read-data` of the uploaded copy; a foreign password or damage refuses it. */
async function checkExportedRepository(session: OpsSession, source: string, scratch: string) {
  const { settings } = session;
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
}

/** The one snapshot whose tags name the marker's id and stack; anything else in the copy stays out. */
async function markedSnapshot(
  session: OpsSession,
  source: string,
  scratch: string,
  marker: ExportMarker,
): Promise<string> {
  const listed = await session.exec(
    `restic --no-cache --no-lock -r "$1" --password-file ${PASSWORD_FILE} snapshots --json --tag edms`,
    [scratch],
  );
  const matching = parseSnapshots(listed.stdout).filter(
    (b) => b.id === marker.id && b.stack === marker.stack,
  );
  if (matching.length !== 1) {
    throw refuse(
      `${source} holds ${matching.length} backups tagged ${marker.id} of stack ${marker.stack}, not one. Nothing was imported.`,
      "Export the backup again with `edms-ops backups export <id> --to DIR` and import that folder.",
    );
  }
  return matching[0].snapshot;
}

/**
 * A plain export has a first-release backup's file names (manifest.json, db.dump, media.tar) but is meant for
 * other tools: said plainly instead of "not a folder export wrote". Only a regular file is read.
 */
function refusePlainExport(manifestFile: string): void {
  const regular = fs.existsSync(manifestFile) && fs.lstatSync(manifestFile).isFile();
  const text = regular ? fs.readFileSync(manifestFile, "utf8") : "";
  const format = tryParseJson(text, z.looseObject({ format: z.unknown() }));
  if (format.ok && format.value.format === PLAIN_FORMAT) {
    throw refuse(
      `${path.dirname(manifestFile)} is a plain export (${PLAIN_FORMAT}), for restoring without edms-ops. Nothing was imported.`,
      "Import the restic export instead (`edms-ops backups export <id> --to DIR`, without --plain), or restore this one by hand as its manifest.json's howToRestore says.",
    );
  }
}
