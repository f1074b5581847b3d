/**
 * Backups of the first release: `<id>/{db.dump,media.tar,manifest.json}` directories in the backups
 * volume (or exported to a folder). They stay listable; `backups import-legacy` (and `backups import` of
 * an exported folder) turns each into a snapshot of the restic repository, with its original time, after
 * checking both files against the manifest's sha256.
 */
import { Settings } from "../../model/settings";
import { failure, refuse } from "../core/errors";
import { checkedManifest, ID_PATTERN, isSha256, REASON_PATTERN, TAG_VALUE } from "./manifest";
import { progress } from "../core/log";
import {
  backupTags,
  DUMP_FILE,
  MANIFEST_FILE,
  MEDIA_DIR,
  OPS_HELPER_ROLE,
  STAGE_DIR,
} from "./restic";
import { OpsSession } from "../engine/session";
import { backupToolbox } from "../engine/toolbox";
import type { BackupIdentity, Manifest } from "./manifest";
import { LEGACY_GLOB } from "./layout";

export interface LegacyFile {
  readonly sha256: string;
  readonly bytes: number;
}

export interface LegacyManifest extends BackupIdentity {
  readonly format: 1;
  readonly files: Record<string, LegacyFile>;
  readonly tables: Record<string, number>;
  readonly migrations: Record<string, string>;
}

export const LEGACY_FILES = ["db.dump", "media.tar"] as const;

export interface LegacyEntry {
  readonly id: string;
  readonly manifest?: LegacyManifest;
  /** Why it cannot be imported, when it cannot. */
  readonly problem?: string;
}

export function parseLegacyManifest(text: string, expectedId?: string): LegacyManifest {
  return checkedManifest<LegacyManifest>(text, 1, expectedId, (m) => [
    ...LEGACY_FILES.filter(
      (file) => !(isSha256(m?.files?.[file]?.sha256) && Number.isInteger(m?.files?.[file]?.bytes)),
    ).map((file) => `no checksum for ${file}`),
    ...(typeof m?.tables === "object" ? [] : ["no row counts"]),
    // These become restic tags and the snapshot's time: nothing else than what the first release wrote.
    ...(typeof m?.reason === "string" && REASON_PATTERN.test(m.reason) ? [] : ["bad reason"]),
    ...[m?.version, m?.targetVersion]
      .filter((v) => v !== null && v !== undefined)
      .filter((v) => typeof v !== "string" || !TAG_VALUE.test(v))
      .map(() => "bad release"),
    ...(typeof m?.createdAt === "string" &&
    !Number.isNaN(Date.parse(m.createdAt)) &&
    Date.parse(m.createdAt) <= Date.now() + 3600_000
      ? []
      : ["createdAt is not a past time"]),
  ]);
}

/** A first-release backup of another stack is not this stack's to restore. */
export function checkLegacyStack(legacy: LegacyManifest, stack: string): void {
  if (legacy.stack !== stack) {
    throw refuse(
      `Backup ${legacy.id} belongs to stack \`${legacy.stack}\`, not \`${stack}\`. Nothing was imported.`,
      `Import it with \`--stack ${legacy.stack}\`.`,
    );
  }
}

/** First-release backup directories in the backups volume. */
export async function listLegacy(settings: Settings): Promise<LegacyEntry[]> {
  const script = `for d in ${LEGACY_GLOB}; do [ -d "$d" ] || continue; n=$(basename "$d"); printf '%s\\t' "$n"; if [ -f "$d/manifest.json" ]; then tr -d '\\n' < "$d/manifest.json"; fi; echo; done`;
  const { stdout } = await backupToolbox(settings, script, { quick: true });
  const entries: LegacyEntry[] = [];
  for (const line of stdout.split("\n").filter(Boolean)) {
    const id = line.slice(0, line.indexOf("\t"));
    const text = line.slice(line.indexOf("\t") + 1);
    if (!ID_PATTERN.test(id)) {
      continue; // the restic repository and other folders of ours
    }
    try {
      entries.push({ id, manifest: parseLegacyManifest(text, id) });
    } catch (err) {
      entries.push({ id, problem: text ? (err as Error).message : "no manifest.json" });
    }
  }
  return entries.sort((a, b) => a.id.localeCompare(b.id));
}

/** The format-2 manifest a legacy backup becomes. */
export function upgradeManifest(legacy: LegacyManifest): Manifest {
  return {
    format: 2,
    id: legacy.id,
    stack: legacy.stack,
    environment: legacy.environment,
    reason: legacy.reason,
    createdAt: legacy.createdAt,
    version: legacy.version,
    ...(legacy.targetVersion ? { targetVersion: legacy.targetVersion } : {}),
    postgresVolume: legacy.postgresVolume,
    database: { file: "db.dump", ...legacy.files["db.dump"] },
    tables: legacy.tables,
    migrations: legacy.migrations ?? {},
  };
}

/**
 * Imports one legacy directory (a path inside the backups volume) as a snapshot. The media archive is
 * unpacked inside the backup container, once: the first release stored media only as a tar.
 */
export async function importLegacyDir(
  session: OpsSession,
  dir: string,
  legacy: LegacyManifest,
): Promise<void> {
  const { settings } = session;
  checkLegacyStack(legacy, settings.stack);
  progress(`importing ${legacy.id} (first-release format) into the restic repository`);
  const manifest = upgradeManifest(legacy);
  const tags = backupTags({
    id: legacy.id,
    reason: legacy.reason,
    release: legacy.version,
    target: legacy.targetVersion,
    stack: settings.stack,
    imported: true,
  });
  // A container of its own: the session's /edms/media is the live media volume.
  const script = `
dir=$1; dump_sum=$2; media_sum=$3; tags=$4; host=$5; time=$6
[ "$(sha256sum "$dir/db.dump" | cut -d' ' -f1)" = "$dump_sum" ] || { echo "db.dump: sha256 does not match the manifest" >&2; exit 3; }
[ "$(sha256sum "$dir/media.tar" | cut -d' ' -f1)" = "$media_sum" ] || { echo "media.tar: sha256 does not match the manifest" >&2; exit 3; }
mkdir -p ${STAGE_DIR} ${MEDIA_DIR}
cp "$dir/db.dump" ${DUMP_FILE}
cat > ${MANIFEST_FILE}
tar -C ${MEDIA_DIR} -xf "$dir/media.tar"
# A folder from outside: no setuid/setgid or world-writable file of it reaches the media a restore brings back.
# Numeric owners stay: they are the app's user, which must still write its media after the restore.
chmod -R ug-s,o-w ${MEDIA_DIR}
cd / && lrestic backup --host "$host" --tag "$tags" --time "$time" ${STAGE_DIR} ${MEDIA_DIR} >/dev/null`;
  const result = await backupToolbox(settings, script, {
    writable: true,
    role: OPS_HELPER_ROLE,
    allowFailure: true,
    input: JSON.stringify(manifest, null, 2),
    args: [
      dir,
      legacy.files["db.dump"].sha256,
      legacy.files["media.tar"].sha256,
      tags,
      settings.stack,
      legacy.createdAt.replace("T", " ").replace(/(\.\d+)?Z$/, ""),
    ],
  });
  if (result.code !== 0) {
    throw failure(
      `Backup ${legacy.id} was not imported: ${result.stderr.trim().split("\n").pop()}. Nothing was changed.`,
      "Fix the cause shown, then run `edms-ops backups import-legacy` again (imported backups are skipped).",
    );
  }
}
