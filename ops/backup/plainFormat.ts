/**
 * The plain export's pure parts (`backups export <id> --plain --to DIR`): where it goes, its manifest and its
 * SHA256SUMS. A plain export is for tools that know nothing of edms-ops or restic, so everything in it is a
 * file a PostgreSQL or Django operator already knows how to use:
 *
 *   DIR/<id>/db.dump        pg_dump custom format, byte for byte the backup's own
 *   DIR/<id>/media.tar      the media tree, paths relative to the media root
 *   DIR/<id>/manifest.json  the backup's manifest, the files' sums and the commands to restore by hand
 *   DIR/<id>/SHA256SUMS     for `sha256sum -c`; written last, so its presence means the export is complete
 */
import * as fs from "fs";
import * as path from "path";
import { refuse } from "../core/errors";
import { checkBackupId, Manifest } from "../store/manifest";

export const PLAIN_FORMAT = "edms-plain-export/1";

/** The files of a plain export, in the order they are written; SHA256SUMS last. */
export const PLAIN_FILES = ["db.dump", "media.tar", "manifest.json", "SHA256SUMS"] as const;
export type PlainFileName = (typeof PLAIN_FILES)[number];

export interface FileSum {
  readonly sha256: string;
  readonly bytes: number;
}

/** The name a file has while it is written: hidden, and never one of the finished names. */
export const partialName = (name: PlainFileName) => `.${name}.partial`;

/**
 * The folder to write, `DIR/<id>` as an absolute path (so no tool could read it as an option), after the
 * refusals: DIR must be an existing directory, `<id>/` in it absent or empty. Nothing is created here.
 */
export function plainTarget(to: string, id: string): { target: string; exists: boolean } {
  checkBackupId(id); // the id pattern has no `/` or `..`: DIR/<id> stays inside DIR
  const dir = path.resolve(to);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw refuse(
      `\`--to ${to}\`: ${dir} is not an existing directory. Nothing was exported.`,
      `Create it (\`mkdir -p ${dir}\`) or pass another \`--to\`, then retry.`,
    );
  }
  const target = path.join(dir, id);
  if (!fs.existsSync(target) && !isLink(target)) {
    return { target, exists: false };
  }
  // lstat: a link named <id> (to a folder someone else reads) is no place for a production dump.
  const found = fs.lstatSync(target);
  const mine = typeof process.getuid !== "function" || found.uid === process.getuid();
  if (!found.isDirectory() || !mine || fs.readdirSync(target).length > 0) {
    throw refuse(
      `${target} already exists and is not an empty folder of yours. Nothing was exported or overwritten.`,
      "Choose another --to, or move that folder away, then retry.",
    );
  }
  return { target, exists: true };
}

function isLink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/** How the media tree is unpacked by hand: as the user running it, with no setuid or setgid bit. */
export const MEDIA_EXTRACT =
  "mkdir -p MEDIA_ROOT && tar --no-same-owner --no-same-permissions -xf media.tar -C MEDIA_ROOT && chmod -R ug-s MEDIA_ROOT";

/** Exactly what an operator types to restore the export by hand, also printed by docs/operations.md. */
export function howToRestore(manifest: Pick<Manifest, "version">): string[] {
  return [
    "cd into this folder, then:",
    "sha256sum -c SHA256SUMS",
    "pg_restore --no-owner --no-privileges --exit-on-error --single-transaction -h HOST -U USER -d DATABASE db.dump   # into an empty database",
    // Owners and setuid/setgid bits of an archive are never taken over, as edms-ops' own extractions.
    `${MEDIA_EXTRACT}   # as Django's user; MEDIA_ROOT: Django's, empty`,
    `Then start release ${manifest.version ?? "(none recorded)"} of the app on that database and media (\`python manage.py migrate --check\` passes).`,
  ];
}

/**
 * The export's manifest: the backup's own fields, the export's files and how to restore them. Fields are
 * copied by name, not spread: a key a newer release adds to the backup's manifest does not leave the host
 * until someone has checked it holds no secret. The backup's manifest holds none (names, counts, sums).
 */
export function plainManifest(
  manifest: Manifest,
  files: { readonly "db.dump": FileSum; readonly "media.tar": FileSum },
): Record<string, unknown> {
  return {
    format: PLAIN_FORMAT,
    backupManifestFormat: manifest.format,
    id: manifest.id,
    stack: manifest.stack,
    environment: manifest.environment,
    reason: manifest.reason,
    createdAt: manifest.createdAt,
    version: manifest.version,
    ...(manifest.targetVersion === undefined ? {} : { targetVersion: manifest.targetVersion }),
    postgresVolume: manifest.postgresVolume,
    database: manifest.database,
    tables: manifest.tables,
    ...(manifest.objects === undefined ? {} : { objects: manifest.objects }),
    migrations: manifest.migrations,
    // Role names, settings, the comment: what db.dump itself holds for `pg_restore --create`.
    ...(manifest.databaseState === undefined ? {} : { databaseState: manifest.databaseState }),
    files: {
      "db.dump": { sha256: files["db.dump"].sha256, bytes: files["db.dump"].bytes },
      "media.tar": { sha256: files["media.tar"].sha256, bytes: files["media.tar"].bytes },
    },
    howToRestore: howToRestore(manifest),
  };
}

/**
 * `sha256sum -c` input: `<sum>  <name>` per line (two spaces: sha256sum's text mode, which on Linux reads
 * the same bytes as binary mode). Names are our fixed ones: no escaping needed.
 */
export function sha256sums(sums: Partial<Record<PlainFileName, string>>): string {
  return PLAIN_FILES.filter((name) => sums[name] !== undefined)
    .map((name) => `${sums[name]}  ${name}\n`)
    .join("");
}
