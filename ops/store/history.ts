/** Deployment history: `history.jsonl` in the backups volume, one JSON object per successful deploy. */
import { Settings } from "../../model/settings";
import { migrationState } from "../database/postgres";
import { liveWeb } from "../engine/services";
import { backupsMount, readBackupsVolume, toolbox } from "../engine/toolbox";
import { LAYOUT } from "./layout";
import { Deployment, DeploymentSchema } from "./records";
import { parseJsonLines } from "../core/json";

export type { Deployment } from "./records";

export async function readHistory(settings: Settings): Promise<Deployment[]> {
  const stdout = await readBackupsVolume(settings, `cat ${LAYOUT.history} 2>/dev/null || true`);
  // A torn last line from a killed append is not a deployment.
  return parseJsonLines(stdout, DeploymentSchema);
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
  await toolbox(settings, [backupsMount(settings)], `cat >> ${LAYOUT.history}; sync`, {
    input: JSON.stringify(entry) + "\n",
  });
}
