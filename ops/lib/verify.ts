/**
 * A backup counts as good only when it restores: checksums match the manifest, the dump restores into a
 * scratch PostgreSQL (no network, thrown away after) with the manifest's row counts, and the media archive
 * unpacks to the manifest's file checksums.
 */
import { randomBytes } from "crypto";
import { Settings } from "../../components/config";
import { POSTGRES_DB, POSTGRES_USER } from "../../components/postgres";
import { Manifest, MEDIA_SHA256, parseSha256Lines, storedChecksums } from "./backups";
import { tableCounts } from "./database";
import { docker } from "./docker";
import { OpsError } from "./errors";
import { progress } from "./log";
import { backupsMount, sh, toolbox } from "./toolbox";

export function compareMaps(
  what: string,
  expected: Record<string, unknown>,
  actual: Record<string, unknown>,
): string[] {
  const problems: string[] = [];
  for (const key of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    if (!(key in actual)) {
      problems.push(`${what} ${key}: missing (expected ${String(expected[key]).slice(0, 16)})`);
    } else if (!(key in expected)) {
      problems.push(`${what} ${key}: not in the backup`);
    } else if (expected[key] !== actual[key]) {
      problems.push(
        `${what} ${key}: ${String(actual[key]).slice(0, 16)} != expected ${String(expected[key]).slice(0, 16)}`,
      );
    }
  }
  return problems;
}

export async function verifyChecksums(settings: Settings, manifest: Manifest): Promise<string[]> {
  const stored = await storedChecksums(settings, manifest.id);
  const problems: string[] = [];
  for (const [file, entry] of Object.entries(manifest.files)) {
    const actual = stored[file];
    if (!actual) {
      problems.push(`${file}: missing`);
    } else if (actual.sha256 !== entry.sha256) {
      problems.push(`${file}: sha256 mismatch (file changed or corrupted)`);
    } else if (actual.bytes !== entry.bytes) {
      problems.push(`${file}: size ${actual.bytes} != ${entry.bytes}`);
    }
  }
  return problems;
}

/** Media checksums as a restore would produce them: the archive unpacked to scratch. */
export async function archivedMediaChecksums(
  settings: Settings,
  id: string,
): Promise<Record<string, string>> {
  const script = `mkdir /tmp/m && tar -C /tmp/m -xf ${sh(`/backups/${id}/media.tar`)} && cd /tmp/m && ${MEDIA_SHA256}`;
  return parseSha256Lines((await toolbox(settings, [backupsMount(settings, true)], script)).stdout);
}

/** Waits until a scratch server (official-image contract) has finished initdb and accepts connections. */
export async function waitForScratch(name: string): Promise<void> {
  for (let attempt = 0; attempt < 120; attempt += 1) {
    const logs = await docker(["logs", name], { allowFailure: true });
    const ready = /init process complete/i.test(logs.stdout + logs.stderr);
    if (
      ready &&
      (
        await docker(["exec", name, "pg_isready", "-U", POSTGRES_USER, "-d", POSTGRES_DB], {
          allowFailure: true,
        })
      ).code === 0
    ) {
      return;
    }
    const state = await docker(["inspect", "-f", "{{.State.Running}}", name], {
      allowFailure: true,
    });
    if (state.stdout.trim() === "false") {
      throw new OpsError(
        `scratch database exited: ${(logs.stderr || logs.stdout).trim().split("\n").pop()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new OpsError("scratch database did not start within 60s");
}

export async function testRestore(settings: Settings, manifest: Manifest): Promise<string[]> {
  const name = `${settings.namePrefix}-verify-${randomBytes(3).toString("hex")}`;
  progress(`test-restoring ${manifest.id} into scratch database ${name}`);
  await docker([
    "run",
    "-d",
    "--name",
    name,
    "--network",
    "none",
    "--label",
    `edms.stack=${settings.stack}`,
    "--label",
    "edms.role=ops",
    "-e",
    `POSTGRES_USER=${POSTGRES_USER}`,
    "-e",
    `POSTGRES_DB=${POSTGRES_DB}`,
    "-e",
    "POSTGRES_HOST_AUTH_METHOD=trust",
    "-v",
    `${settings.names.backupsVolume}:/backups:ro`,
    settings.postgresImage,
  ]);
  try {
    await waitForScratch(name);
    const restored = await docker(
      [
        "exec",
        name,
        "pg_restore",
        "-U",
        POSTGRES_USER,
        "-d",
        POSTGRES_DB,
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        `/backups/${manifest.id}/db.dump`,
      ],
      { allowFailure: true },
    );
    if (restored.code !== 0) {
      return [
        `db.dump does not restore: ${restored.stderr.trim().split("\n").slice(-2).join(" ")}`,
      ];
    }
    return compareMaps("table", manifest.tables, await tableCounts(settings, name));
  } finally {
    await docker(["rm", "-f", "-v", name], { allowFailure: true });
  }
}

export interface VerifyReport {
  readonly id: string;
  readonly ok: boolean;
  readonly problems: string[];
}

export async function verifyBackup(settings: Settings, manifest: Manifest): Promise<VerifyReport> {
  progress(`verifying ${manifest.id}: checksums`);
  const problems = await verifyChecksums(settings, manifest);
  if (problems.length === 0) {
    problems.push(...(await testRestore(settings, manifest)));
    progress("comparing media checksums");
    problems.push(
      ...compareMaps("media", manifest.media, await archivedMediaChecksums(settings, manifest.id)),
    );
  }
  return { id: manifest.id, ok: problems.length === 0, problems };
}
