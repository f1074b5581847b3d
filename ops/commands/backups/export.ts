import { Command } from "commander";
import * as fs from "fs";
import * as path from "path";
import { findBackup } from "../../store/catalog";
import { connect, openStack, stackOf } from "../../core/context";
import { pipeCommands, run } from "../../engine/docker";
import { failure, refuse } from "../../core/errors";
import { formatBytes, progress, say } from "../../core/log";
import { BackupEntry, FROM_KEY_HINT, PASSWORD_FILE, REPOSITORY } from "../../store/restic";
import { OpsSession, withSession } from "../../engine/session";
import { SCRATCH } from "../../store/layout";
import { EXPORT_MARKER } from "../../store/exported";
import { plainTarget } from "../../backup/plainFormat";
import { exportPlain } from "../../backup/plainExport";
import { requireBackupsRoom, snapshotStoredSize } from "../../backup/space";

async function exportBackup(
  id: string,
  opts: { to: string; plain?: boolean },
  command: Command,
): Promise<void> {
  if (opts.plain) {
    return exportPlainBackup(id, opts.to, command);
  }
  const settings = await openStack(command);
  const entry = await findBackup(settings, id);
  const target = path.resolve(opts.to, id);
  const taken = () =>
    refuse(
      `${target} already exists. Nothing was copied.`,
      "Choose another --to or remove that folder, then retry.",
    );
  if (fs.existsSync(target)) {
    throw taken();
  }
  await withSession(settings, `backups export ${id}`, async (session) => {
    await requireBackupsRoom(
      session,
      await snapshotStoredSize(session, entry),
      "a copy of the backup, checked before it leaves the host",
      `the export of ${id}`,
    );
    // Made here, exclusively: a second export to the same folder (it waited for the lock) must not
    // merge a second repository into this one, nor remove it when it fails.
    fs.mkdirSync(path.dirname(target), { recursive: true });
    try {
      fs.mkdirSync(target);
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === "EEXIST" ? taken() : err;
    }
    try {
      await copyOut(session, entry, target);
    } catch (err) {
      fs.rmSync(target, { recursive: true, force: true });
      throw err;
    }
  });
  say(
    `exported ${id} to ${target}: a restic repository holding this one backup (checked with restic check --read-data), encrypted with the stack's backup password.`,
  );
}

/** One backup into a repository of its own in `target` (made empty by the caller), checked first. */
async function copyOut(session: OpsSession, entry: BackupEntry, target: string): Promise<void> {
  const { id } = entry;
  const scratch = SCRATCH.export(process.pid);
  progress(`copying ${id} into a repository of its own, checking it`);
  // The copy is checked with --read-data before it leaves the host.
  await session.exec(
    `rm -rf ${SCRATCH.exportGlob}; restic --no-cache -r "$1" --password-file ${PASSWORD_FILE} init --repository-version 2 --copy-chunker-params --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} ${FROM_KEY_HINT} >/dev/null && ` +
      `restic --no-cache -r "$1" --password-file ${PASSWORD_FILE} copy --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} ${FROM_KEY_HINT} "$2" >/dev/null && ` +
      `restic --no-cache -r "$1" --password-file ${PASSWORD_FILE} check --read-data >/dev/null`,
    [scratch, entry.snapshot],
  );
  progress(`exporting ${id} to ${target}`);
  const [sent, received] = await pipeCommands(
    (stdout, signal) =>
      session.exec(`tar -C "$1" -cf - .`, [scratch], { stdout, allowFailure: true, signal }),
    (input) => run("tar", ["-x", "-C", target], { input, allowFailure: true }),
  );
  await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
  if (sent.code !== 0 || received.code !== 0) {
    throw failure(
      `export failed, nothing kept in ${target}: ${(received.stderr || sent.stderr).trim()}`,
      `Check that ${target} is writable and has room, then retry \`edms-ops backups export ${id} --to ${path.dirname(target)} --stack ${session.settings.stack}\`.`,
    );
  }
  fs.writeFileSync(
    path.join(target, EXPORT_MARKER),
    JSON.stringify(
      { format: "restic", id, stack: session.settings.stack, exportedFrom: entry.snapshot },
      null,
      2,
    ),
  );
}

/** `--plain`: files for other tools (ops/backup/plainFormat.ts); refused before the engine is reached. */
async function exportPlainBackup(id: string, to: string, command: Command): Promise<void> {
  const target = plainTarget(to, id);
  const settings = await connect(stackOf(command));
  const entry = await findBackup(settings, id);
  const files = await withSession(settings, `backups export ${id} --plain`, (session) =>
    exportPlain(session, entry, target),
  );
  say(
    `exported ${id} to ${target.target}: db.dump (${formatBytes(files["db.dump"].bytes)}, pg_dump custom format), ` +
      `media.tar (${formatBytes(files["media.tar"].bytes)}), manifest.json and SHA256SUMS. ` +
      "Check it with `sha256sum -c SHA256SUMS` in that folder; manifest.json's howToRestore has the commands to restore it by hand.",
  );
}

export function register(backups: Command): void {
  backups
    .command("export <id>")
    .description(
      "Copy one backup off the Docker host into DIR/<id>/: a restic repository of its own, checked before it leaves; with --plain, db.dump, media.tar and a manifest with sha256 sums for tools without edms-ops or restic",
    )
    .requiredOption("--to <dir>", "local directory to copy into (with --plain: must exist)")
    .option(
      "--plain",
      "write pg_dump's custom-format db.dump, media.tar, manifest.json and SHA256SUMS instead of a restic repository",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backups export 2026-11-25T14-00-00Z-manual --to /mnt/offsite --stack production\n" +
        "  edms-ops backups export 2026-11-25T14-00-00Z-manual --plain --to /mnt/handover --stack production",
    )
    .action(exportBackup);
}
