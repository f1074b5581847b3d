/** Deployment history: `history.jsonl` in the backups volume, one JSON object per successful deploy. */
import { Settings } from "../../model/settings";
import { migrationState } from "../database/postgres";
import { liveWeb } from "../engine/services";
import { backupsMount, readBackupsVolume, toolbox } from "../engine/toolbox";

export interface Deployment {
  readonly version: string;
  readonly image: string;
  readonly deployedAt: string;
  readonly stack: string;
  readonly environment: string;
  readonly postgresVolume: string;
  readonly migrations: Record<string, string>;
  readonly preDeployBackup: string | null;
  /** Set on the entry `rollback` writes once it has reversed the newer release's migrations. */
  readonly rolledBackFrom?: string;
}

export async function readHistory(settings: Settings): Promise<Deployment[]> {
  const stdout = await readBackupsVolume(
    settings,
    "cat /backups/history.jsonl 2>/dev/null || true",
  );
  return stdout
    .split("\n")
    .filter((l) => l.trim())
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Deployment];
      } catch {
        return []; // a torn last line from a killed append is not a deployment
      }
    });
}

/** Deployments onto the current data volumes (a fresh reset starts a new history line). */
export async function currentHistory(settings: Settings): Promise<Deployment[]> {
  return (await readHistory(settings)).filter(
    (d) => d.postgresVolume === settings.names.postgresVolume,
  );
}

/** Appends what serves now: the live web's image and the database's migration state at this moment. */
export async function recordServing(
  settings: Settings,
  version: string,
  extra: Pick<Deployment, "preDeployBackup" | "rolledBackFrom">,
): Promise<Deployment> {
  const web = await liveWeb(settings);
  const entry: Deployment = {
    version,
    image: web?.image ?? "unknown",
    deployedAt: new Date().toISOString(),
    stack: settings.stack,
    environment: settings.environment,
    postgresVolume: settings.names.postgresVolume,
    migrations: await migrationState(settings),
    ...extra,
  };
  await appendHistory(settings, entry);
  return entry;
}

export async function appendHistory(settings: Settings, entry: Deployment): Promise<void> {
  await toolbox(settings, [backupsMount(settings)], "cat >> /backups/history.jsonl; sync", {
    input: JSON.stringify(entry) + "\n",
  });
}
