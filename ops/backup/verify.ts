/**
 * A backup counts as good only when it restores. verify = restic's check of the repository's structure;
 * the dump out of the snapshot (every blob authenticated and hashed by restic as it is read) restored
 * into a scratch PostgreSQL (no network, thrown away after; scratchRestore.ts), with its sha256 and the row counts compared
 * to the manifest; and every media blob of the snapshot read back the same way. Nothing is extracted to
 * disk: the media are streamed through restic's `dump` and discarded.
 */
import { BackupEntry } from "../store/restic";
import { lastLine } from "../core/log";
import { DatabaseState, Manifest } from "../store/manifest";
import { isGone, readManifest } from "../store/catalog";
import { inventory, Inventory } from "../database/postgres";
import { flattenDatabaseState, withoutRestoreGrants } from "../database/dbstate";
import { progress } from "../core/log";
import { MEDIA_DIR } from "../store/restic";
import { restoreIntoScratch } from "./scratchRestore";
import { OpsSession } from "../engine/session";
import { allSettledOrThrow } from "../core/errors";
import { HostFault } from "../core/hostFault";
import { listingCount, mediaCountProblems, snapshotMedia } from "./mediaCount";
import { requireTestRestoreRoom } from "./space";
import { repositoryProblems } from "./repositoryCheck";
import { containerServer } from "../database/server";
import { ScratchServer, scratchRemovedOnSignal } from "./scratchServer";

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

async function testRestore(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  scratch: ScratchServer,
): Promise<string[]> {
  const { name } = scratch;
  await scratch.ready;
  await requireTestRestoreRoom(session, entry, manifest, name);
  progress(`test-restoring ${entry.id} into scratch database ${name}`);
  const problems = await restoreIntoScratch(session, entry, manifest, name);
  return problems.length
    ? problems
    : inventoryProblems(manifest, await inventory(session.settings, containerServer(name)));
}

/**
 * Rows per table in every schema, plus schemas, views, sequences, functions and large objects, plus the
 * database's own state and object owners, against the manifest. Backups made before the manifest had
 * `objects` counted public tables only: compared as such; those without `databaseState` skip that part.
 */
export function inventoryProblems(
  manifest: Pick<Manifest, "tables" | "objects" | "databaseState">,
  { tables, objects, state }: Pick<Inventory, "tables" | "objects"> & Partial<Inventory>,
  options: { readonly afterRestoreGrants?: boolean } = {},
): string[] {
  const scoped = manifest.objects
    ? tables
    : Object.fromEntries(Object.entries(tables).filter(([key]) => !key.includes(".")));
  // After a restore's swap, the CONNECT grants it gave the app and backup roles are its own, not the backup's.
  const normal = (s: DatabaseState) => (options.afterRestoreGrants ? withoutRestoreGrants(s) : s);
  const expectedState = manifest.databaseState && normal(manifest.databaseState);
  return [
    ...compareMaps("table", manifest.tables, scoped),
    ...(manifest.objects ? compareMaps("objects:", manifest.objects, objects) : []),
    ...(expectedState
      ? compareMaps(
          "database:",
          flattenDatabaseState(expectedState),
          state ? flattenDatabaseState(normal(state)) : {},
        )
      : []),
  ];
}

/**
 * Reads every media blob of the snapshot back (authenticated by restic), discarding the data; and its
 * files and bytes against the count the manifest took as the backup read the volume.
 */
export async function readMedia(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
): Promise<string[]> {
  progress("reading back every media file of the snapshot");
  if (!entry.paths.includes(MEDIA_DIR)) {
    return [];
  }
  const result = await session.exec(
    `lrestic dump -a tar "$1" ${MEDIA_DIR} >/dev/null`,
    [entry.snapshot],
    {
      allowFailure: true,
    },
  );
  if (result.code !== 0) {
    return [`media cannot be read from the repository: ${lastLine(result.stderr)}`];
  }
  if (!manifest.media) {
    return [];
  }
  return mediaCountProblems(
    "the snapshot",
    manifest.media,
    listingCount(await snapshotMedia(session, entry.snapshot)),
  );
}

export type { RepositoryCheck } from "../store/records";

export interface VerifyReport {
  readonly id: string;
  readonly ok: boolean;
  readonly problems: string[];
}

export interface VerifyOptions {
  /**
   * false: the repository's structure and the manifest only; the caller reads the data and checks it the same
   * way (a restore does: the dump into the side database, beside the live one, and `readMedia` meanwhile).
   */
  readonly data?: boolean;
}

export async function verifyBackup(
  session: OpsSession,
  entry: BackupEntry,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  return (await verifyReadingManifest(session, entry, options)).report;
}

/**
 * verifyBackup, and the manifest it read (undefined when it could not): a restore goes on with it rather
 * than starting restic once more to read it again.
 */
export async function verifyReadingManifest(
  session: OpsSession,
  entry: BackupEntry,
  { data = true }: VerifyOptions = {},
): Promise<{ report: VerifyReport; manifest: Manifest | undefined }> {
  session.pinned.add(entry.id);
  progress(`verifying ${entry.id}: repository structure`);
  // The test-restore's server starts beside the reads below; it goes once the test-restore is done (the
  // media may still be read), or whatever they find.
  const scratch = data ? scratchRemovedOnSignal(session.settings) : undefined;
  try {
    return await verifyReads(session, entry, scratch);
  } finally {
    await scratch?.remove();
  }
}

/** verifyReadingManifest's reads: the data's only with a scratch server to test-restore into. */
async function verifyReads(
  session: OpsSession,
  entry: BackupEntry,
  scratch: ScratchServer | undefined,
): Promise<{ report: VerifyReport; manifest: Manifest | undefined }> {
  // The repository's check, the manifest and the data's checks are independent reads (restic's locks are
  // shared): they run at once, and the problems are reported in this order whatever finishes first.
  const checked = repositoryProblems(session, `verify ${entry.id}`);
  const read = readManifest(session, entry).then(
    (manifest) => ({ manifest, problem: undefined, gone: undefined }),
    // No backup to verify any more: a refusal once the reads beside it are done, not a failed verification.
    (err: Error) =>
      isGone(err)
        ? { manifest: undefined, problem: undefined, gone: err }
        : { manifest: undefined, problem: err.message, gone: undefined },
  );
  const dataProblems = read.then(async ({ manifest }) => {
    if (!manifest || !scratch) {
      return { found: [], host: undefined };
    }
    const [restored, media] = await allSettledOrThrow([
      testRestore(session, entry, manifest, scratch)
        .finally(() => scratch.remove())
        .then(
          (found) => ({ found, host: undefined }),
          (err: Error) =>
            err instanceof HostFault ? { found: [], host: err } : Promise.reject(err),
        ),
      readMedia(session, entry, manifest),
    ]);
    return { found: [...restored.found, ...media], host: restored.host };
  });
  const [check, { manifest, problem, gone }, data] = await Promise.all([
    checked,
    read,
    dataProblems,
  ]);
  if (gone) {
    throw gone;
  }
  const problems = [...check, ...(problem ? [problem] : []), ...data.found];
  // A test-restore the host stopped proves nothing either way, but does not hide damage found beside it.
  if (data.host && !problems.length) {
    throw data.host;
  }
  return { report: { id: entry.id, ok: problems.length === 0, problems }, manifest };
}
