/**
 * Restore: verified backup only; the current state is backed up first (the undo); web and worker are
 * stopped so nothing writes meanwhile; `pg_restore --clean --if-exists` in one transaction (a failure leaves
 * the database as it was); media replaced; then counts and checksums must equal the manifest.
 */
import { Settings } from "../../components/config";
import { POSTGRES_DB, POSTGRES_USER } from "../../components/postgres";
import { createBackup, Manifest, MEDIA_SHA256, parseSha256Lines, runningVersion } from "./backups";
import { hasSchema, psql, requirePostgres, TABLES_SQL, tableCounts } from "./database";
import { docker, pipeCommands, stopRunning } from "./docker";
import { OpsError } from "./errors";
import { progress } from "./log";
import { appContainers } from "./services";
import { backupsMount, mediaMount, sh, toolbox } from "./toolbox";
import { compareMaps, verifyBackup } from "./verify";

export interface RestoreResult {
  readonly undoBackup: string | null;
  readonly restarted: boolean;
}

export async function restoreBackup(
  settings: Settings,
  manifest: Manifest,
): Promise<RestoreResult> {
  await requirePostgres(settings);
  const report = await verifyBackup(settings, manifest);
  if (!report.ok) {
    throw new OpsError(
      `Backup ${manifest.id} failed verification; nothing was restored or changed:\n  - ${report.problems.join("\n  - ")}`,
    );
  }
  let undoBackup: string | null = null;
  if (await hasSchema(settings)) {
    progress("backing up the current state first (the undo of this restore)");
    undoBackup = (await createBackup(settings, { reason: "pre-restore" }))?.id ?? null;
  }
  const runningRelease = await runningVersion(settings);
  const running = await stopRunning(await appContainers(settings));
  if (running.length) {
    progress(`stopped ${running.join(", ")} so nothing writes during the restore`);
  }
  progress("restoring database (pg_restore --clean --if-exists, single transaction)");
  // Tables the backup does not know (from a later release) would survive --clean. Their DROP and the whole
  // restore (pg_restore turned into SQL) go through one psql transaction: all of it, or nothing.
  const extra = (await psql(settings, TABLES_SQL)).filter((t) => !(t in manifest.tables));
  const drops = extra.length
    ? `DROP TABLE IF EXISTS ${extra.map((t) => `public."${t}"`).join(", ")} CASCADE;`
    : "";
  const restoreScript =
    '{ printf "%s\\n" "$1"; pg_restore --clean --if-exists --no-owner -f -; } | ' +
    `psql -U ${POSTGRES_USER} -d ${POSTGRES_DB} -X -q -v ON_ERROR_STOP=1 --single-transaction`;
  const [, restored] = await pipeCommands(
    (stdout) =>
      toolbox(
        settings,
        [backupsMount(settings, true)],
        `cat ${sh(`/backups/${manifest.id}/db.dump`)}`,
        {
          stdout,
        },
      ),
    (input) =>
      docker(
        [
          "exec",
          "-i",
          settings.names.postgresContainer,
          "sh",
          "-c",
          restoreScript,
          "restore",
          drops,
        ],
        {
          input,
          allowFailure: true,
        },
      ),
  );
  if (restored.code !== 0) {
    throw new OpsError(
      `pg_restore failed; the database was left as it was (single transaction). ${restored.stderr.trim().split("\n").pop()}\n` +
        `Web/worker are stopped: start them with \`docker start ${running.join(" ")}\` or redeploy.`,
    );
  }
  progress("restoring media");
  await toolbox(
    settings,
    [backupsMount(settings, true), mediaMount(settings, false)],
    `find /media -mindepth 1 -delete && tar -C /media -xpf ${sh(`/backups/${manifest.id}/media.tar`)} && sync`,
  );
  progress("integrity check: row counts and media checksums against the manifest");
  const problems = [
    ...compareMaps("table", manifest.tables, await tableCounts(settings)),
    ...compareMaps("media", manifest.media, await mediaChecksums(settings)),
  ];
  if (problems.length) {
    throw new OpsError(
      `Restored data does not match backup ${manifest.id}:\n  - ${problems.join("\n  - ")}` +
        (undoBackup ? `\nThe state before the restore is in backup ${undoBackup}.` : ""),
    );
  }
  // Code of another release than the backup's would meet a schema it does not expect: leave it stopped and
  // let the redeploy of the backup's release start the right code.
  const sameRelease = manifest.version !== null && manifest.version === runningRelease;
  if (running.length && sameRelease) {
    progress(`starting ${running.join(", ")}`);
    await docker(["start", ...running]);
  }
  return { undoBackup, restarted: running.length > 0 && sameRelease };
}

export async function mediaChecksums(settings: Settings): Promise<Record<string, string>> {
  const script = `cd /media && ${MEDIA_SHA256}`;
  return parseSha256Lines((await toolbox(settings, [mediaMount(settings)], script)).stdout);
}
