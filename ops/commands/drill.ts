import { Command } from "commander";
import { checkBackupId } from "../store/manifest";
import { pickListed, SessionListing, sessionListing } from "../store/catalog";
import { openStack } from "../core/context";
import { hasSchema, requirePostgres } from "../database/postgres";
import { drillBackup, DrillRecord } from "../backup/drill";
import { failure, refuse } from "../core/errors";
import { progress, say } from "../core/log";
import { REASON_PATTERN, TAG_VALUE } from "../store/manifest";
import { handedOrNewer, newestOf, preDeployBackupFor } from "../store/catalog";
import { BackupEntry } from "../store/restic";
import { failedChecks, failedOnHostOnly } from "../store/records";
import { REASONS } from "../../model/hooks";
import { Settings } from "../../model/settings";
import { withSession } from "../engine/session";

interface DrillFlags {
  readonly check?: string;
  readonly sample: string;
  readonly targetVersion?: string;
  readonly backupId?: string;
  readonly reason: string;
  readonly json?: boolean;
}

export function register(program: Command): void {
  program
    .command("drill [id]")
    .description(
      "Restore drill of a backup (an id or `latest`) into scratch space: database into a scratch PostgreSQL, media into a scratch volume; " +
        "the backup's own release runs `manage.py check` and `migrate --check` against them; migration state, row counts and media checksums " +
        "(a sample plus every file changed since the previous drill) compared; optional --check; a JSON record in the backups volume. Never touches live data",
    )
    .option(
      "--check <command>",
      "a shell command run in the release's container against the restored data (must exit 0)",
    )
    .option(
      "--sample <n>",
      "media files checksummed besides those changed since the last drill",
      "20",
    )
    .option(
      "--target-version <version>",
      "with `latest`: the newest pre-deploy backup for this release",
    )
    .option(
      "--backup-id <id>",
      "instead of [id]: the backup the pre-deploy backup hook printed (what the deploy hook drills); empty when it found nothing to back up",
    )
    .option("--reason <reason>", "why the drill runs, kept in its record", "manual")
    .option("--json", "print the drill record as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops drill latest --stack production\n" +
        "  edms-ops drill 2026-11-25T14-00-00Z-pre-deploy --stack production --check 'python3 manage.py shell -c \"from documents.models import Document; assert Document.objects.exists()\"'\n" +
        "Records: drills/<time>-drill.json in the backups volume; `edms-ops evidence` shows the last one.",
    )
    .action(drillCommand);
}

function report(record: DrillRecord, json: boolean): void {
  if (json) {
    say(JSON.stringify(record, null, 2));
    return;
  }
  for (const check of [...record.checks, ...(record.rehearsal ? [record.rehearsal] : [])]) {
    say(
      `${check.ok ? "ok  " : "FAIL"} ${check.name} (${check.seconds.toFixed(1)}s): ${check.detail.split("\n")[0]}`,
    );
  }
  if (record.ok) {
    say(
      `Drill of ${record.backup} passed in ${record.seconds.toFixed(1)}s (release ${record.release ?? "-"}); record ${record.id}.`,
    );
  }
}

async function drillCommand(
  id: string | undefined,
  opts: DrillFlags,
  command: Command,
): Promise<void> {
  const sample = checkRequest(id, opts);
  const settings = await openStack(command);
  // The backup is chosen in the session, whose container lists the repository anyway.
  const drilled = await withSession(
    settings,
    `drill ${id ?? (opts.backupId || "(none handed)")}`,
    async (session) => {
      const chosen = await backupToDrill(settings, await sessionListing(session), id, opts);
      if (!chosen) {
        return null;
      }
      progress(`drill of ${chosen.id} (snapshot ${chosen.snapshot.slice(0, 8)})`);
      const options = { trigger: opts.reason, check: opts.check, sample };
      return { chosen, record: await drillBackup(session, chosen, options) };
    },
  );
  if (!drilled) {
    return;
  }
  const { chosen, record } = drilled;
  report(record, opts.json === true);
  if (record.ok && record.rehearsal && !record.rehearsal.ok) {
    throw failure(
      `The backup ${chosen.id} passed its drill, but the release to deploy does not migrate its data (record ${record.id}):\n  - ${record.rehearsal.name}: ${record.rehearsal.detail.split("\n")[0]}`,
      "Fix the release's migration for the data production holds, then deploy again; production's schema and data were not touched.",
    );
  }
  if (!record.ok) {
    const failed = failedChecks(record.checks)
      .map((c) => `${c.name}: ${c.detail.split("\n")[0]}`)
      .join("\n  - ");
    if (failedOnHostOnly(record.checks)) {
      throw failure(
        `Drill of backup ${chosen.id} could not finish (record ${record.id}): the host failed, not the backup, which is neither proven nor found at fault:\n  - ${failed}`,
        `Free what it ran out of on the Docker host (disk space: \`docker system df\` and \`df -h\`, and \`edms:backup.drillScratch\` when set; memory), then run \`edms-ops drill ${chosen.id} --stack ${settings.stack}\` again.`,
      );
    }
    throw failure(
      `Drill of backup ${chosen.id} FAILED (record ${record.id}):\n  - ${failed}`,
      `Do not count on this backup. Find the damage with \`edms-ops verify ${chosen.id} --stack ${settings.stack}\`; ` +
        "data shared with a damaged snapshot is reused by new backups, so repair the repository before relying on a new one.",
    );
  }
}

/** Refuses what cannot make a drill before anything is run; returns the media sample size. */
function checkRequest(id: string | undefined, opts: DrillFlags): number {
  const sample = Number(opts.sample);
  if (!Number.isInteger(sample) || sample < 0) {
    throw refuse(
      `--sample takes a whole number ≥ 0 (got \`${opts.sample}\`).`,
      "Nothing was run; pass e.g. `--sample 20`.",
    );
  }
  if ((id === undefined) === (opts.backupId === undefined)) {
    throw refuse(
      "Name the backup to drill once: an id or `latest`, or --backup-id.",
      "Nothing was run; e.g. `edms-ops drill latest`.",
    );
  }
  if (
    opts.targetVersion !== undefined &&
    (id !== "latest" || !TAG_VALUE.test(opts.targetVersion))
  ) {
    throw refuse(
      "--target-version goes with `latest` and takes a release tag.",
      "Nothing was run; e.g. `edms-ops drill latest --target-version 2.0.0`.",
    );
  }
  if (!REASON_PATTERN.test(opts.reason)) {
    throw refuse(
      `--reason must be lowercase letters, digits and dashes (got \`${opts.reason}\`).`,
      "Nothing was run; e.g. `--reason weekly`.",
    );
  }
  const named = id === "latest" ? "" : (id ?? opts.backupId ?? "");
  if (named) {
    checkBackupId(named);
  }
  return sample;
}

/** The backup the request names; null when there is nothing to drill (said why). */
async function backupToDrill(
  settings: Settings,
  listing: SessionListing,
  id: string | undefined,
  opts: DrillFlags,
): Promise<BackupEntry | null> {
  if (opts.backupId !== undefined) {
    return handedBackup(settings, listing, opts.backupId);
  }
  const { complete, hostTime } = listing;
  const named = id ?? opts.backupId ?? "latest";
  if (named !== "latest") {
    return pickListed(settings, complete, named);
  }
  const { targetVersion } = opts;
  const entry = targetVersion
    ? preDeployBackupFor(complete, { stack: settings.stack, release: targetVersion, now: hostTime })
    : newestOf(complete, hostTime);
  if (entry) {
    return entry;
  }
  if (!targetVersion) {
    await requirePostgres(settings);
  } else if (await nothingToDrill(settings)) {
    return null;
  }
  throw refuse(
    `No ${targetVersion ? `pre-deploy backup for release ${targetVersion}` : "backup"} of stack ${settings.stack} to drill.`,
    `Take one with \`edms-ops backup --stack ${settings.stack}${targetVersion ? ` --reason ${REASONS.preDeploy} --target-version ${targetVersion}` : ""}\`.`,
  );
}

/** A fresh deploy's pre-deploy backup finds no schema and takes none: then there is nothing to drill. */
/**
 * What the pre-deploy hook hands over: its backup, or a newer pre-deploy backup of the release being deployed
 * (a retried deploy whose backup hook did not run again hands an old or an empty id). None at all is fine
 * only for a database without a schema yet.
 */
async function handedBackup(
  settings: Settings,
  { complete, hostTime }: SessionListing,
  handed: string,
): Promise<BackupEntry | null> {
  if (handed && !complete.some((b) => b.id === handed)) {
    return pickListed(settings, complete, handed); // refuses, naming the newest
  }
  const query = { stack: settings.stack, release: settings.version, now: hostTime };
  const entry = handedOrNewer(complete, query, handed);
  if (entry && entry.id !== handed) {
    progress(`drilling ${entry.id}: the newest pre-deploy backup of ${settings.version}`);
  }
  if (entry || (await nothingToDrill(settings))) {
    return entry ?? null;
  }
  throw refuse(
    `The pre-deploy backup hook handed no backup id, and stack ${settings.stack} has no pre-deploy backup of ${settings.version}, yet its database has a schema.`,
    `Nothing was drilled; take one with \`edms-ops backup --stack ${settings.stack} --reason ${REASONS.preDeploy} --target-version ${settings.version}\`, then deploy again.`,
  );
}

async function nothingToDrill(settings: Settings): Promise<boolean> {
  await requirePostgres(settings);
  if (await hasSchema(settings)) {
    return false;
  }
  progress(`nothing to drill: database of ${settings.stack} has no schema yet (fresh deploy)`);
  say("nothing to drill: the database has no schema yet");
  return true;
}
