/** The checks every manifest format shares: JSON, format number, id pattern, id matching its container. */
import { failure, refuse } from "../core/errors";
import { z } from "zod";
import { tryParseJson } from "../core/json";

const CORRUPT_MANIFEST_FIX =
  "Do not restore this backup; choose another with `edms-ops backups list` and check the repository with `edms-ops verify <id>`.";

export const ID_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z-[a-z0-9-]+$/;
export const REASON_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;
/** What a release may look like where it becomes a restic tag (restic splits tags at commas). */
export const TAG_VALUE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Parses a manifest and checks its shape; `checks` adds the problems specific to its format. Anything off
 * means the backup is not trusted.
 */
export function checkedManifest<T extends { format: number; id: string }>(
  text: string,
  format: T["format"],
  expectedId: string | undefined,
  checks: (manifest: T) => string[],
): T {
  // Only an object is checked here; the format's fields are checked below, each problem by name.
  const parsed = tryParseJson(text, z.looseObject({}));
  if (!parsed.ok) {
    throw failure("manifest.json is not valid JSON", CORRUPT_MANIFEST_FIX);
  }
  const manifest = parsed.value as unknown as T;
  const problems: string[] = [];
  if (manifest?.format !== format) {
    problems.push("unknown format");
  }
  if (typeof manifest?.id !== "string" || !ID_PATTERN.test(manifest.id)) {
    problems.push("bad id");
  }
  if (expectedId && manifest?.id !== expectedId) {
    problems.push(`id ${manifest?.id} does not match ${expectedId}`);
  }
  problems.push(...checks(manifest));
  if (problems.length) {
    throw failure(`manifest.json is corrupt: ${problems.join(", ")}`, CORRUPT_MANIFEST_FIX);
  }
  return manifest;
}

export const isSha256 = (value: unknown) =>
  typeof value === "string" && /^[0-9a-f]{64}$/.test(value);

/** What a backup's manifest says about it, in the first release's format and the current one alike. */
export interface BackupIdentity {
  readonly id: string;
  readonly stack: string;
  readonly environment: string;
  readonly reason: string;
  /** Docker host time when the backup started. */
  readonly createdAt: string;
  /** Release running when the backup was taken (null: none yet). */
  readonly version: string | null;
  /** For pre-deploy backups: the release about to be deployed. */
  readonly targetVersion?: string;
  readonly postgresVolume: string;
}

export interface Manifest extends BackupIdentity {
  readonly format: 2;
  readonly database: { readonly file: "db.dump"; readonly bytes: number; readonly sha256: string };
  /** Rows per table, every schema (`schema.table` outside public; only public in backups before `objects`). */
  readonly tables: Record<string, number>;
  /** Schemas, views, sequences, functions, large objects; absent in older backups. */
  readonly objects?: Record<string, number>;
  readonly migrations: Record<string, string>;
  /** Regular files in the media volume and their bytes, counted as the backup read it; absent in older backups. */
  readonly media?: MediaCount;
}

export interface MediaCount {
  readonly files: number;
  readonly bytes: number;
}

const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;

export function checkBackupId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw refuse(
      `\`${id}\` is not a backup id (they look like 2026-11-25T14-00-00Z-pre-deploy).`,
      "List them with `edms-ops backups list`.",
    );
  }
}

/** Parses and checks a format-2 manifest (the one inside each snapshot). */
export function parseManifest(text: string, expectedId?: string): Manifest {
  return checkedManifest<Manifest>(text, 2, expectedId, (m) => [
    ...(m?.database && isSha256(m.database.sha256) && Number.isInteger(m.database.bytes)
      ? []
      : ["no checksum for db.dump"]),
    ...(typeof m?.tables === "object" && typeof m?.migrations === "object"
      ? []
      : ["no row counts or migration state"]),
    ...(m?.media === undefined || (isCount(m.media?.files) && isCount(m.media?.bytes))
      ? []
      : ["bad media count"]),
  ]);
}
