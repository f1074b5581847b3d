/**
 * Backups live in the stack's `<prefix>_backups` volume, one directory per backup:
 *   <id>/db.dump      pg_dump custom format
 *   <id>/media.tar    the media volume
 *   <id>/manifest.json  sha256 + size of both files, row count per table, migration state, versions,
 *                       sha256 of every media file
 * A backup is written under `.partial-<id>/` and renamed into place only after its manifest, so a killed or
 * failed backup is never listed as complete. Pruning renames to `.deleting-<id>` before removing.
 */
import { Transform } from "stream";
import { Settings } from "../../components/config";
import { POSTGRES_DB, POSTGRES_USER } from "../../components/postgres";
import { hasSchema, requirePostgres } from "./database";
import { docker, pipeCommands, volumeExists } from "./docker";
import { liveWeb } from "./services";
import { OpsError } from "./errors";
import { formatBytes, progress } from "./log";
import { SnapshotSession } from "./snapshot";
import { backupsMount, mediaMount, sh, toolbox } from "./toolbox";

export interface FileEntry {
  readonly sha256: string;
  readonly bytes: number;
}

export interface Manifest {
  readonly format: 1;
  readonly id: string;
  readonly stack: string;
  readonly environment: string;
  readonly reason: string;
  readonly createdAt: string;
  readonly completedAt: string;
  /** Release running when the backup was taken (null: none yet). */
  readonly version: string | null;
  /** For pre-deploy backups: the release about to be deployed. */
  readonly targetVersion?: string;
  readonly postgresVolume: string;
  readonly files: Record<string, FileEntry>;
  readonly tables: Record<string, number>;
  readonly migrations: Record<string, string>;
  /** sha256 of every media file, by path relative to the media root. */
  readonly media: Record<string, string>;
}

export const BACKUP_FILES = ["db.dump", "media.tar"] as const;
const ID_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z-[a-z0-9-]+$/;
const REASON_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;

export function checkBackupId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new OpsError(
      `\`${id}\` is not a backup id (they look like 2026-11-25T14-00-00Z-pre-deploy). List them with \`edms-ops backups list\`.`,
      2,
    );
  }
}

/** Parses and checks a manifest's shape; anything off means the backup is not trusted. */
export function parseManifest(text: string, expectedId?: string): Manifest {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(text) as Manifest;
  } catch {
    throw new OpsError("manifest.json is not valid JSON");
  }
  const problems: string[] = [];
  if (manifest?.format !== 1) {
    problems.push("unknown format");
  }
  if (typeof manifest?.id !== "string" || !ID_PATTERN.test(manifest.id)) {
    problems.push("bad id");
  }
  if (expectedId && manifest?.id !== expectedId) {
    problems.push(`id ${manifest?.id} does not match directory ${expectedId}`);
  }
  for (const file of BACKUP_FILES) {
    const entry = manifest?.files?.[file];
    if (!entry || !/^[0-9a-f]{64}$/.test(entry.sha256) || !Number.isInteger(entry.bytes)) {
      problems.push(`no checksum for ${file}`);
    }
  }
  if (typeof manifest?.tables !== "object" || typeof manifest?.media !== "object") {
    problems.push("no counts or media checksums");
  }
  if (problems.length) {
    throw new OpsError(`manifest.json is corrupt: ${problems.join(", ")}`);
  }
  return manifest;
}

export interface BackupListing {
  readonly complete: Manifest[];
  readonly corrupt: { id: string; problem: string }[];
}

export async function listBackups(settings: Settings): Promise<BackupListing> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return { complete: [], corrupt: [] };
  }
  const script = `for d in /backups/*/; do [ -d "$d" ] || continue; n=$(basename "$d"); printf '%s\\t' "$n"; if [ -f "$d/manifest.json" ]; then tr -d '\\n' < "$d/manifest.json"; fi; echo; done`;
  const { stdout } = await toolbox(settings, [backupsMount(settings, true)], script);
  const listing: BackupListing = { complete: [], corrupt: [] };
  for (const line of stdout.split("\n").filter(Boolean)) {
    const [id, text] = [line.slice(0, line.indexOf("\t")), line.slice(line.indexOf("\t") + 1)];
    try {
      listing.complete.push(parseManifest(text, id));
    } catch (err) {
      listing.corrupt.push({ id, problem: text ? (err as Error).message : "no manifest.json" });
    }
  }
  listing.complete.sort((a, b) => a.id.localeCompare(b.id));
  return listing;
}

export async function findBackup(settings: Settings, id: string): Promise<Manifest> {
  checkBackupId(id);
  const { complete, corrupt } = await listBackups(settings);
  const found = complete.find((m) => m.id === id);
  if (found) {
    return found;
  }
  const bad = corrupt.find((c) => c.id === id);
  if (bad) {
    throw new OpsError(
      `Backup ${id} is not usable: ${bad.problem}. Choose another with \`edms-ops backups list --stack ${settings.stack}\`.`,
    );
  }
  throw new OpsError(
    `No backup ${id} in ${settings.names.backupsVolume}. ` +
      (complete.length
        ? `Newest: ${complete[complete.length - 1].id}.`
        : `Take one with \`edms-ops backup --stack ${settings.stack}\`.`),
    2,
  );
}

export async function runningVersion(settings: Settings): Promise<string | null> {
  const web = await liveWeb(settings);
  return web ? (web.labels["edms.version"] ?? null) : null;
}

function newId(reason: string, taken: readonly string[]): string {
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/:/g, "-");
  let id = `${stamp}-${reason}`;
  for (let n = 2; taken.includes(id); n += 1) {
    id = `${stamp}-${reason}-${n}`;
  }
  return id;
}

export interface BackupRequest {
  readonly reason: string;
  readonly targetVersion?: string;
}

/** Takes a backup; returns its manifest, or null when the database has no schema yet (fresh deploy). */
export async function createBackup(
  settings: Settings,
  request: BackupRequest,
): Promise<Manifest | null> {
  if (!REASON_PATTERN.test(request.reason)) {
    throw new OpsError(
      `--reason must be lowercase letters, digits and dashes (got \`${request.reason}\`), e.g. --reason before-upgrade`,
      2,
    );
  }
  await requirePostgres(settings);
  if (!(await hasSchema(settings))) {
    progress(`nothing to back up: database of ${settings.stack} has no schema yet (fresh deploy)`);
    return null;
  }
  if (!(await volumeExists(settings.names.backupsVolume))) {
    throw new OpsError(
      `Backups volume ${settings.names.backupsVolume} is missing. Run \`pulumi up\` for ${settings.stack} to create it.`,
    );
  }
  const before = await listBackups(settings);
  const id = newId(request.reason, [
    ...before.complete.map((m) => m.id),
    ...before.corrupt.map((c) => c.id),
  ]);
  const partial = `/backups/.partial-${id}`;
  const createdAt = new Date().toISOString();
  const version = await runningVersion(settings);
  progress(`backup ${id}: ${settings.stack} at release ${version ?? "(none running)"}`);
  // Leftovers of killed backups or prunes are never complete backups; clear them first.
  await toolbox(
    settings,
    [backupsMount(settings)],
    `rm -rf /backups/.partial-* /backups/.deleting-*; mkdir ${sh(partial)}`,
  );
  try {
    const { tables, migrations } = await dumpDatabase(settings, partial);
    progress("archiving media");
    const media = await archiveMedia(settings, partial);
    const files = await checksumFiles(settings, partial);
    const manifest: Manifest = {
      format: 1,
      id,
      stack: settings.stack,
      environment: settings.environment,
      reason: request.reason,
      createdAt,
      completedAt: new Date().toISOString(),
      version,
      ...(request.targetVersion ? { targetVersion: request.targetVersion } : {}),
      postgresVolume: settings.names.postgresVolume,
      files,
      tables,
      migrations,
      media,
    };
    await toolbox(
      settings,
      [backupsMount(settings)],
      `cat > ${sh(partial)}/manifest.json; sync; mv ${sh(partial)} ${sh(`/backups/${id}`)}; sync`,
      { input: JSON.stringify(manifest, null, 2) },
    );
    progress(
      `backup ${id} complete: database ${formatBytes(files["db.dump"].bytes)}, media ${formatBytes(files["media.tar"].bytes)}, ${Object.keys(media).length} media files`,
    );
    await pruneBackups(settings);
    return manifest;
  } catch (err) {
    // Free space as seen before the partial backup is removed: tools word a full disk differently
    // (tar says "Wrote only N of M bytes"), the filesystem does not.
    const free = await toolbox(
      settings,
      [backupsMount(settings, true)],
      "df -Pk /backups | tail -1 | awk '{print $4}'",
      { allowFailure: true },
    );
    await toolbox(settings, [backupsMount(settings)], `rm -rf ${sh(partial)}`, {
      allowFailure: true,
    });
    const message = (err as Error).message;
    const full = /No space left on device|ENOSPC/i.test(message) || Number(free.stdout.trim()) < 64;
    throw new OpsError(
      `Backup ${id} failed${full ? ": no space left in the backups volume" : ""}. It was removed; the ${before.complete.length} earlier backup(s) are untouched.\n` +
        (full
          ? `Free space on the volume ${settings.names.backupsVolume} or lower \`edms:backup.keep\`, then retry.\n`
          : "") +
        `Cause: ${message}`,
    );
  }
}

async function dumpDatabase(settings: Settings, partial: string) {
  const { session, snapshot } = await SnapshotSession.open(settings.names.postgresContainer);
  try {
    const [tables, migrations] = [await session.tableCounts(), await session.migrations()];
    progress(
      `dumping database (${Object.keys(tables).length} tables, ${Object.values(tables).reduce((a, b) => a + b, 0)} rows)`,
    );
    let bytes = 0;
    let reported = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes - reported > 64 * 1024 * 1024) {
          reported = bytes;
          progress(`  ${formatBytes(bytes)} dumped`);
        }
        done(null, chunk);
      },
    });
    const [dumped, written] = await pipeCommands(
      (stdout) =>
        docker(
          [
            "exec",
            settings.names.postgresContainer,
            "pg_dump",
            "-U",
            POSTGRES_USER,
            "-d",
            POSTGRES_DB,
            "-Fc",
            `--snapshot=${snapshot}`,
          ],
          { stdout, allowFailure: true },
        ),
      (input) =>
        toolbox(settings, [backupsMount(settings)], `cat > ${sh(partial)}/db.dump`, {
          input: input.pipe(counter),
          allowFailure: true,
        }),
    );
    if (dumped.code !== 0 || written.code !== 0) {
      throw new OpsError(
        `database dump failed: ${(written.stderr || dumped.stderr).trim().split("\n").pop()}`,
      );
    }
    return { tables, migrations };
  } finally {
    session.close();
  }
}

/**
 * sha256 of every file below the current directory, as `<hash>  ./<path>` lines. One definition for backup,
 * verify and restore, so the files left out (the app's `.health-*` probes) are the same everywhere.
 */
export const MEDIA_SHA256 = "find . -type f ! -name '.health-*' -print0 | xargs -0 -r sha256sum";

async function archiveMedia(settings: Settings, partial: string): Promise<Record<string, string>> {
  // Checksums are taken from the archive itself (extracted to scratch), so they describe exactly what a
  // restore will put back, even if the app wrote a file meanwhile.
  const script = [
    `tar -C /media -cf ${sh(partial)}/media.tar .`,
    "mkdir /tmp/m",
    `tar -C /tmp/m -xf ${sh(partial)}/media.tar`,
    `cd /tmp/m && ${MEDIA_SHA256}`,
  ].join("\n");
  const { stdout } = await toolbox(
    settings,
    [backupsMount(settings), mediaMount(settings)],
    script,
  );
  return parseSha256Lines(stdout);
}

export function parseSha256Lines(stdout: string): Record<string, string> {
  const sums: Record<string, string> = {};
  for (const line of stdout.split("\n").filter(Boolean)) {
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (match) {
      sums[match[2].replace(/^\.\//, "")] = match[1];
    }
  }
  return sums;
}

async function checksumFiles(settings: Settings, dir: string): Promise<Record<string, FileEntry>> {
  const script = `cd ${sh(dir)} && for f in ${BACKUP_FILES.join(" ")}; do printf '%s %s %s\\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"; done`;
  const { stdout } = await toolbox(settings, [backupsMount(settings, true)], script);
  const files: Record<string, FileEntry> = {};
  for (const line of stdout.split("\n").filter(Boolean)) {
    const [sha256, bytes, name] = line.split(" ");
    files[name] = { sha256, bytes: Number(bytes) };
  }
  return files;
}

/** Keeps the newest `edms:backup.keep` complete backups. */
export async function pruneBackups(settings: Settings): Promise<string[]> {
  const { complete } = await listBackups(settings);
  const excess = complete
    .slice(0, Math.max(0, complete.length - settings.backup.keep))
    .map((m) => m.id);
  if (excess.length) {
    const script = excess
      .map(
        (id) =>
          `mv ${sh(`/backups/${id}`)} ${sh(`/backups/.deleting-${id}`)} && rm -rf ${sh(`/backups/.deleting-${id}`)}`,
      )
      .join("\n");
    await toolbox(settings, [backupsMount(settings)], script);
    progress(
      `pruned ${excess.length} old backup(s), keeping ${settings.backup.keep}: ${excess.join(", ")}`,
    );
  }
  return excess;
}

/** Current checksums of the files of a stored backup. */
export function storedChecksums(
  settings: Settings,
  id: string,
): Promise<Record<string, FileEntry>> {
  checkBackupId(id);
  return checksumFiles(settings, `/backups/${id}`);
}
