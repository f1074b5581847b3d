import { Command } from "commander";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BACKUP_FILES, findBackup, listBackups, Manifest, parseManifest } from "../lib/backups";
import { openStack } from "../lib/context";
import { pipeCommands, run, volumeExists } from "../lib/docker";
import { OpsError } from "../lib/errors";
import { formatBytes, progress, say } from "../lib/log";
import { backupsMount, sh, toolbox } from "../lib/toolbox";

/** Checks a backup directory on this machine against its manifest; returns the manifest. */
async function checkLocalCopy(dir: string): Promise<Manifest> {
  const manifestFile = path.join(dir, "manifest.json");
  if (!fs.existsSync(manifestFile)) {
    throw new OpsError(
      `${dir} holds no manifest.json: not a backup directory. Nothing was imported.`,
      2,
    );
  }
  const manifest = parseManifest(fs.readFileSync(manifestFile, "utf8"));
  const problems: string[] = [];
  for (const file of BACKUP_FILES) {
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) {
      problems.push(`${file} is missing`);
      continue;
    }
    const hash = createHash("sha256");
    for await (const chunk of fs.createReadStream(full)) {
      hash.update(chunk as Buffer);
    }
    if (hash.digest("hex") !== manifest.files[file].sha256) {
      problems.push(`${file}: sha256 does not match the manifest`);
    }
  }
  if (problems.length) {
    throw new OpsError(
      `Backup copy in ${dir} is corrupt: ${problems.join("; ")}. Nothing was imported.`,
    );
  }
  return manifest;
}

export function register(program: Command): void {
  const backups = program
    .command("backups")
    .description("List backups, copy them off the host and bring them back");

  backups
    .command("list")
    .description("List complete backups (newest last) and any that are damaged")
    .option("--json", "print as JSON")
    .addHelpText("after", "\nExample:\n  edms-ops backups list --stack production")
    .action(async (opts: { json?: boolean }, command: Command) => {
      const settings = await openStack(command);
      const { complete, corrupt } = await listBackups(settings);
      if (opts.json) {
        say(JSON.stringify({ complete, corrupt }, null, 2));
        return;
      }
      if (complete.length === 0) {
        say(
          `No backups for stack ${settings.stack}. Take one with \`edms-ops backup --stack ${settings.stack}\`.`,
        );
      }
      for (const m of complete) {
        const size = formatBytes(m.files["db.dump"].bytes + m.files["media.tar"].bytes);
        say(
          `${m.id}  ${m.reason.padEnd(12)} release ${m.version ?? "-"}  ${size}  ${Object.keys(m.media).length} media files`,
        );
      }
      corrupt.forEach((c) => say(`${c.id}  DAMAGED: ${c.problem}`));
    });

  backups
    .command("export <id>")
    .description("Copy a backup off the Docker host into DIR/<id>/, checked against its manifest")
    .requiredOption("--to <dir>", "local directory to copy into")
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops backups export 2026-11-25T14-00-00Z-manual --to /mnt/offsite --stack production",
    )
    .action(async (id: string, opts: { to: string }, command: Command) => {
      const settings = await openStack(command);
      const manifest = await findBackup(settings, id);
      const target = path.resolve(opts.to, id);
      if (fs.existsSync(target)) {
        throw new OpsError(
          `${target} already exists; choose another --to or remove it. Nothing was copied.`,
          2,
        );
      }
      fs.mkdirSync(path.dirname(target), { recursive: true });
      progress(`exporting ${id} to ${target}`);
      const [sent, received] = await pipeCommands(
        (stdout) =>
          toolbox(settings, [backupsMount(settings, true)], `tar -C /backups -cf - ${sh(id)}`, {
            stdout,
            allowFailure: true,
          }),
        (input) => run("tar", ["-x", "-C", path.dirname(target)], { input, allowFailure: true }),
      );
      if (sent.code !== 0 || received.code !== 0) {
        fs.rmSync(target, { recursive: true, force: true });
        throw new OpsError(`export failed: ${(received.stderr || sent.stderr).trim()}`);
      }
      await checkLocalCopy(target);
      say(`exported ${manifest.id} to ${target} (checksums verified)`);
    });

  backups
    .command("import <dir>")
    .description(
      "Bring an exported backup directory back into the stack's backups volume; refused if its manifest or checksums are off",
    )
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops backups import /mnt/offsite/2026-11-25T14-00-00Z-manual --stack production",
    )
    .action(async (dir: string, _opts: unknown, command: Command) => {
      const settings = await openStack(command);
      const manifest = await checkLocalCopy(path.resolve(dir));
      if (!(await volumeExists(settings.names.backupsVolume))) {
        throw new OpsError(
          `Backups volume ${settings.names.backupsVolume} does not exist. Deploy the stack first (a fresh deploy creates it), then import.`,
        );
      }
      const { complete } = await listBackups(settings);
      if (complete.some((m) => m.id === manifest.id)) {
        throw new OpsError(
          `Backup ${manifest.id} is already in ${settings.names.backupsVolume}. Nothing was imported.`,
          2,
        );
      }
      const partial = `/backups/.partial-import-${manifest.id}`;
      const [sent, received] = await pipeCommands(
        (stdout) =>
          run("tar", ["-C", path.resolve(dir), "-cf", "-", "manifest.json", ...BACKUP_FILES], {
            stdout,
            allowFailure: true,
          }),
        (input) =>
          toolbox(
            settings,
            [backupsMount(settings)],
            `mkdir -p ${sh(partial)} && tar -xf - -C ${sh(partial)} && sync && mv ${sh(partial)} ${sh(`/backups/${manifest.id}`)}`,
            {
              input,
              allowFailure: true,
            },
          ),
      );
      if (sent.code !== 0 || received.code !== 0) {
        await toolbox(settings, [backupsMount(settings)], `rm -rf ${sh(partial)}`, {
          allowFailure: true,
        });
        throw new OpsError(
          `import failed, nothing kept: ${(received.stderr || sent.stderr).trim()}`,
        );
      }
      say(
        `imported ${manifest.id} into ${settings.names.backupsVolume}. Check it with \`edms-ops verify ${manifest.id} --stack ${settings.stack}\`.`,
      );
    });
}
