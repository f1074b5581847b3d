/**
 * "Nothing to back up": the database has no Django schema. On a fresh first deploy that is the truth and
 * the backup is skipped quietly. On a stack whose data volume has held data (a deployment recorded onto it,
 * or a backup taken of it, since its database cluster was made) it means the database was emptied or replaced:
 * a failure, so a scheduled backup is recorded `failed` (and `health` and the alerts say so) instead of `ok`
 * forever, and a deploy stops before it migrates a fresh schema over the loss. On dev and staging a volume
 * created after all of that (a `reset`, a lost volume recreated: a new initdb) is a fresh start again; never on
 * production, where every record counts (dataEvidence). Docker's volume `CreatedAt`
 * cannot say this: it comes from the filesystem and moved when the postgres container restarted.
 */
import { REASONS } from "../../model/hooks";
import { Settings, databaseDescription } from "../../model/settings";
import { isFutureDated } from "../store/retention";
import { failure } from "../core/errors";
import { clusterCreated } from "../database/created";
import { hasSchema } from "../database/postgres";
import { progress } from "../core/log";
import { listBackups } from "../store/catalog";
import { currentHistory, Deployment } from "../store/history";
import { BackupEntry } from "../store/restic";

export interface DataEvidence {
  /** When the database cluster on the current volume was made (initdb, ms); null when unknown: all counts. */
  readonly databaseCreated: number | null;
  /** Deployments recorded onto the current postgres volume's name. */
  readonly history: readonly Pick<Deployment, "version" | "deployedAt">[];
  readonly backups: readonly Pick<BackupEntry, "id" | "time" | "reason" | "imported">[];
  /** The Docker host's clock: a snapshot dated after it (a clock that ran ahead) proves nothing. */
  readonly now?: string;
}

/** Pure: what shows the current volume held data, in words; null when nothing does (a fresh start). */
export function dataSeen(evidence: DataEvidence): string | null {
  const since = (time: string) =>
    evidence.databaseCreated === null || Date.parse(time) >= evidence.databaseCreated;
  const deployed = evidence.history.filter((d) => since(d.deployedAt));
  // Backups that are not of this volume's data although dated after it was made: imported ones (their
  // original time), the earlier generation's undo (taken after the new volume exists), future-dated ones.
  const backedUp = evidence.backups.filter(
    (b) =>
      since(b.time) &&
      !b.imported &&
      b.reason !== REASONS.preFreshStart &&
      !(evidence.now !== undefined && isFutureDated(b, evidence.now)),
  );
  const seen = [
    deployed.length
      ? `${deployed.length} deployment(s) recorded onto it (the last: release ${deployed[deployed.length - 1].version} at ${deployed[deployed.length - 1].deployedAt})`
      : null,
    backedUp.length
      ? `${backedUp.length} backup(s) taken of it (the newest: ${backedUp[backedUp.length - 1].id})`
      : null,
  ].filter(Boolean);
  return seen.length ? seen.join(" and ") : null;
}

/**
 * What the stack's records show of the current database: on production every recorded deployment and backup
 * counts, whenever its cluster was made (a production database that served is never a fresh start, a recreated
 * volume included); elsewhere only those since (a `reset`, a recreated volume: a fresh start). Without
 * `backups`, the deployments only (the repository is not listed).
 */
export async function dataEvidence(
  settings: Settings,
  { backups = true }: { readonly backups?: boolean } = {},
): Promise<DataEvidence> {
  const [listing, history, databaseCreated] = await Promise.all([
    backups ? listBackups(settings, { legacy: false }) : undefined,
    currentHistory(settings),
    settings.environment === "production" ? null : clusterCreated(settings),
  ]);
  return { databaseCreated, history, backups: listing?.complete ?? [], now: listing?.hostTime };
}

/** Returns when skipping is right (a fresh database); throws when the stack's history shows data. */
export async function nothingToBackUp(settings: Settings): Promise<void> {
  const seen = dataSeen(await dataEvidence(settings));
  if (seen) {
    throw failure(
      `Nothing to back up, yet stack ${settings.stack} had data: its database (${databaseDescription(settings)}) has no Django schema ` +
        `(no django_migrations table in any schema), while it has ${seen}. The database was emptied or replaced; ` +
        "no backup was taken and the earlier backups are untouched.",
      restoreFirst(settings),
    );
  }
  progress(`nothing to back up: database of ${settings.stack} has no schema yet (fresh deploy)`);
}

function restoreFirst(settings: Settings): string {
  const restore =
    `Restore the newest good backup (\`edms-ops backups list --stack ${settings.stack}\`, then ` +
    `\`edms-ops restore <id> --stack ${settings.stack}`;
  return settings.environment === "production"
    ? `${restore} --confirm production\`), then deploy again (\`pulumi up --stack ${settings.stack}\`).`
    : `${restore}\`) before anything else runs against it; if it was emptied on purpose, start fresh with ` +
        `\`edms-ops reset --stack ${settings.stack} --confirm ${settings.stack}\`.`;
}

/**
 * Production is never started afresh: `migrate` on a production database without a Django schema, when the
 * stack has deployed or backed up before (its volume lost and recreated empty, its schema dropped), would make
 * an empty schema that web then serves. Refused, nothing changed; the fix is a restore.
 */
export async function refuseProductionFreshStart(settings: Settings, doing: string): Promise<void> {
  if (settings.environment !== "production" || (await hasSchema(settings))) {
    return;
  }
  const seen = dataSeen(await dataEvidence(settings));
  if (seen) {
    throw failure(
      `Production's database (${databaseDescription(settings)}) has no Django schema, yet stack ${settings.stack} had data: it has ${seen}. ` +
        `${doing} would start production afresh on an empty database; production is never reinitialised, so nothing was changed.`,
      restoreFirst(settings),
    );
  }
}
