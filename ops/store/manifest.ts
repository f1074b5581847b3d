/** The checks every manifest format shares: JSON, format number, id pattern, id matching its container. */
import { failure } from "../core/errors";

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
  let manifest: T;
  try {
    manifest = JSON.parse(text) as T;
  } catch {
    throw failure("manifest.json is not valid JSON", CORRUPT_MANIFEST_FIX);
  }
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
