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
  /**
   * Release whose schema the database held (ops/store/schemaRelease.ts); before issue 19, the running web's
   * release. Null: none known.
   */
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
  /** The database's own state and object ownership; absent in older backups (restored without owners). */
  readonly databaseState?: DatabaseState;
  /** Regular files in the media volume and their bytes, counted as the backup read it; absent in older backups. */
  readonly media?: MediaCount;
}

const GrantSchema = z.object({
  grantee: z.string().nullable(),
  grantor: z.string(),
  privilege: z.string(),
  grantable: z.boolean(),
});

/** DatabaseState's shape: checked where psql gives it and where a manifest holds it. */
export const DatabaseStateSchema = z.looseObject({
  owner: z.string(),
  connectionLimit: z.number().int(),
  comment: z.string().nullable(),
  acl: z.array(GrantSchema).nullable(),
  settings: z.array(z.string()),
  roleSettings: z.record(z.string(), z.array(z.string())),
  owners: z.record(z.string(), z.number()),
  roles: z.array(z.string()),
});

/** One privilege of the database's ACL, as `aclexplode` gives it; grantee null is PUBLIC. */
export interface DatabaseGrant {
  readonly grantee: string | null;
  readonly grantor: string;
  readonly privilege: string;
  readonly grantable: boolean;
}

/**
 * What belongs to the database rather than to its contents: pg_restore leaves it out without `--create`, so
 * a backup records it and a restore applies it. Also who owns what, and every role the dump names.
 */
export interface DatabaseState {
  readonly owner: string;
  readonly connectionLimit: number;
  readonly comment: string | null;
  /** null: the default privileges (PUBLIC may connect and create temporary tables). */
  readonly acl: readonly DatabaseGrant[] | null;
  /** `ALTER DATABASE … SET`, as pg_db_role_setting holds them (`work_mem=64MB`). */
  readonly settings: readonly string[];
  /** `ALTER ROLE … IN DATABASE … SET`, per role. */
  readonly roleSettings: Record<string, readonly string[]>;
  /** Objects per kind and owner (`functions edms`, `security definer functions reporting`). */
  readonly owners: Record<string, number>;
  /** Every role the dump or the state above names (owners, grantees, role settings). */
  readonly roles: readonly string[];
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
    ...(m?.databaseState === undefined || DatabaseStateSchema.safeParse(m.databaseState).success
      ? []
      : ["unreadable databaseState"]),
    ...(m?.media === undefined || (isCount(m.media?.files) && isCount(m.media?.bytes))
      ? []
      : ["bad media count"]),
  ]);
}
