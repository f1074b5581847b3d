import { Command } from "commander";
import * as fs from "fs";
import * as path from "path";
import { Settings } from "../../model/settings";
import { applyRetention } from "../store/prune";
import { BackupEntry } from "../store/restic";
import { ensureRepository, findBackup, listBackups, sessionSnapshots } from "../store/catalog";
import { openStack } from "../core/context";
import { pipeCommands, run } from "../engine/docker";
import { failure, refuse } from "../core/errors";
import { storeKeysFromEnv } from "../store/keys";
import {
  checkLegacyStack,
  importLegacyDir,
  LEGACY_FILES,
  LegacyManifest,
  listLegacy,
  parseLegacyManifest,
} from "../store/legacy";
import { progress, say } from "../core/log";
import { listOffsite } from "../store/offsite";
import { PASSWORD_FILE, REPOSITORY } from "../store/restic";
import { OpsSession, withSession } from "../engine/session";

/** Marks an exported folder as ours: a restic repository holding exactly one edms backup. */
const EXPORT_MARKER = "edms-backup.json";

function describe(b: BackupEntry): string {
  const release = b.target ? `${b.release ?? "-"} → ${b.target}` : (b.release ?? "-");
  return `${b.id}  ${b.reason.padEnd(12)} release ${release}  snapshot ${b.snapshot.slice(0, 8)}  ${b.time.replace(/\.\d+Z$/, "Z")}`;
}

async function list(opts: { json?: boolean; offsite?: boolean }, command: Command): Promise<void> {
  const settings = await openStack(command);
  if (opts.offsite) {
    if (!settings.backup.offsite) {
      throw refuse(
        `Stack ${settings.stack} has no \`edms:backup.offsite\`; there is no off-host repository to list.`,
        `Set one with \`pulumi config set --secret --path edms:backup.offsite.repository <url> --stack ${settings.stack}\`, or list local backups: \`edms-ops backups list --stack ${settings.stack}\`.`,
      );
    }
    await storeKeysFromEnv(settings);
    const remote = await listOffsite(settings);
    say(
      opts.json
        ? JSON.stringify({ offsite: remote }, null, 2)
        : remote.map(describe).join("\n") || "No backups off the host yet.",
    );
    return;
  }
  const { complete, legacy } = await listBackups(settings);
  const pending = legacy.filter((l) => !complete.some((b) => b.id === l.id));
  if (opts.json) {
    say(JSON.stringify({ complete, legacy: pending }, null, 2));
    return;
  }
  if (complete.length === 0) {
    say(
      `No backups for stack ${settings.stack}. Take one with \`edms-ops backup --stack ${settings.stack}\`.`,
    );
  }
  complete.forEach((b) => say(describe(b)));
  for (const l of pending) {
    say(`${l.id}  first-release format${l.problem ? `, DAMAGED: ${l.problem}` : ""}`);
  }
  if (pending.some((l) => !l.problem)) {
    say(
      `Import first-release backups with \`edms-ops backups import-legacy --stack ${settings.stack}\`.`,
    );
  }
}

/** Keys from the hook's environment onto the host, and the repositories created: run by `pulumi up`. */
async function init(_opts: unknown, command: Command): Promise<void> {
  const settings = await openStack(command);
  if (!process.env.EDMS_RESTIC_PASSWORD) {
    throw refuse(
      `backups init needs the repository password in EDMS_RESTIC_PASSWORD (the \`backupPassword\` stack output); \`pulumi up\` passes it. Nothing was changed.`,
      `Run \`pulumi up --stack ${settings.stack}\`, or set EDMS_RESTIC_PASSWORD="$(pulumi stack output backupPassword --show-secrets --stack ${settings.stack})" and retry.`,
    );
  }
  await storeKeysFromEnv(settings, { dropOffsite: !settings.backup.offsite });
  await withSession(settings, "backups init", (session) => ensureRepository(session));
  say(`backup repository of ${settings.stack} ready in ${settings.names.backupsVolume}`);
}

async function exportBackup(id: string, opts: { to: string }, command: Command): Promise<void> {
  const settings = await openStack(command);
  const entry = await findBackup(settings, id);
  const target = path.resolve(opts.to, id);
  if (fs.existsSync(target)) {
    throw refuse(
      `${target} already exists. Nothing was copied.`,
      "Choose another --to or remove that folder, then retry.",
    );
  }
  await withSession(settings, `backups export ${id}`, async (session) => {
    const scratch = `/backups/.export-${process.pid}`;
    progress(`copying ${id} into a repository of its own, checking it`);
    // The copy is checked with --read-data before it leaves the host.
    await session.exec(
      `rm -rf /backups/.export-*; restic --no-cache -r "$1" --password-file ${PASSWORD_FILE} init --repository-version 2 --copy-chunker-params --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} >/dev/null && ` +
        `restic --no-cache -r "$1" --password-file ${PASSWORD_FILE} copy --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} "$2" >/dev/null && ` +
        `restic --no-cache -r "$1" --password-file ${PASSWORD_FILE} check --read-data >/dev/null`,
      [scratch, entry.snapshot],
    );
    fs.mkdirSync(target, { recursive: true });
    progress(`exporting ${id} to ${target}`);
    const [sent, received] = await pipeCommands(
      (stdout, signal) =>
        session.exec(`tar -C "$1" -cf - .`, [scratch], { stdout, allowFailure: true, signal }),
      (input) => run("tar", ["-x", "-C", target], { input, allowFailure: true }),
    );
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
    if (sent.code !== 0 || received.code !== 0) {
      fs.rmSync(target, { recursive: true, force: true });
      throw failure(
        `export failed, nothing kept in ${target}: ${(received.stderr || sent.stderr).trim()}`,
        `Check that ${target} is writable and has room, then retry \`edms-ops backups export ${id} --to ${target} --stack ${settings.stack}\`.`,
      );
    }
    fs.writeFileSync(
      path.join(target, EXPORT_MARKER),
      JSON.stringify(
        { format: "restic", id, stack: settings.stack, exportedFrom: entry.snapshot },
        null,
        2,
      ),
    );
  });
  say(
    `exported ${id} to ${target}: a restic repository holding this one backup (checked with restic check --read-data), encrypted with the stack's backup password.`,
  );
}

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
  const settings = await openStack(command);
  const source = path.resolve(dir);
  const legacyManifest = path.join(source, "manifest.json");
  const marker = path.join(source, EXPORT_MARKER);
  if (!fs.existsSync(legacyManifest) && !fs.existsSync(marker)) {
    throw refuse(
      `${source} holds neither ${EXPORT_MARKER} nor manifest.json: not an exported backup. Nothing was imported.`,
      "Pass the folder `edms-ops backups export <id> --to DIR` wrote (DIR itself).",
    );
  }
  const imported = await withSession(settings, "backups import", async (session) => {
    await ensureRepository(session);
    const present = await sessionSnapshots(session);
    const scratch = `/backups/.import-${process.pid}`;
    if (fs.existsSync(legacyManifest)) {
      const manifest = parseLegacyManifest(fs.readFileSync(legacyManifest, "utf8"));
      checkLegacyStack(manifest, settings.stack);
      refuseDuplicate(settings, present, manifest.id);
      await upload(session, source, scratch, ["manifest.json", ...LEGACY_FILES]);
      try {
        await importLegacyDir(session, scratch, manifest);
      } finally {
        await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
      }
      return manifest.id;
    }
    const { id } = JSON.parse(fs.readFileSync(marker, "utf8")) as { id: string };
    refuseDuplicate(settings, present, id);
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
  });
  say(
    `imported ${imported} into ${settings.names.backupsVolume}. Check it with \`edms-ops verify ${imported} --stack ${settings.stack}\`.`,
  );
}

function refuseDuplicate(settings: Settings, present: readonly BackupEntry[], id: string): void {
  if (present.some((b) => b.id === id)) {
    throw refuse(
      `Backup ${id} is already in ${settings.names.backupsVolume}. Nothing was imported.`,
      `Use it as it is: \`edms-ops verify ${id} --stack ${settings.stack}\`.`,
    );
  }
}

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
        await importLegacyDir(session, `/backups/${entry.id}`, entry.manifest as LegacyManifest);
        imported.push(entry.id);
      }
      if (opts.deleteImported) {
        await session.exec(`rm -rf "/backups/$1"`, [entry.id]);
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

export function register(program: Command): void {
  const backups = program
    .command("backups")
    .description(
      "List backups, copy them off the host and bring them back, import first-release backups",
    );

  backups
    .command("list")
    .description(
      "List backups (oldest first): in the stack's repository, or with --offsite in the off-host one",
    )
    .option("--json", "print as JSON")
    .option("--offsite", "list the off-host repository (edms:backup.offsite)")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backups list --stack production\n  edms-ops backups list --offsite --stack production",
    )
    .action(list);

  backups
    .command("init")
    .description(
      "Store the repository key and off-host credentials (from the environment) on the host and create the repository; run by `pulumi up`",
    )
    .addHelpText(
      "after",
      '\nExample:\n  EDMS_RESTIC_PASSWORD="$(pulumi stack output backupPassword --show-secrets)" edms-ops backups init --stack staging',
    )
    .action(init);

  backups
    .command("export <id>")
    .description(
      "Copy one backup off the Docker host into DIR/<id>/: a restic repository of its own, checked before it leaves",
    )
    .requiredOption("--to <dir>", "local directory to copy into")
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops backups export 2026-11-25T14-00-00Z-manual --to /mnt/offsite --stack production",
    )
    .action(exportBackup);

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

  backups
    .command("prune")
    .description(
      "Apply the retention policy now: keep the newest edms:backup.keep and the rollback targets",
    )
    .addHelpText("after", "\nExample:\n  edms-ops backups prune --stack staging")
    .action(prune);
}
