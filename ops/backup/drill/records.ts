/** Drill records: one JSON file per drill in `drills/` of the backups volume (layout.ts, records.ts). */
import { Settings } from "../../../model/settings";
import { parseJsonOrNull } from "../../core/json";
import { volumeExists } from "../../engine/docker";
import { OpsSession } from "../../engine/session";
import { backupToolbox } from "../../engine/toolbox";
import { LAYOUT } from "../../store/layout";
import { DrillRecord, DrillRecordSchema, failedOnHostOnly } from "../../store/records";

export const DRILLS_DIR = LAYOUT.drillsDir;

/**
 * The newest drill that passed, among the newest 100 records, read under the session's lock: what the
 * next drill counts changed files from (a failed drill proved nothing about the files it chose). The
 * search stops at the first record whose top-level `ok` (two spaces in: writeDrillRecord's layout) is true.
 */
export async function latestPassedDrill(session: OpsSession): Promise<DrillRecord | null> {
  const { stdout } = await session.exec(
    `ls ${DRILLS_DIR}/*.json 2>/dev/null | sort -r | head -100 | while read -r f; do ` +
      `if grep -q '^  "ok": true,\\{0,1\\}$' "$f"; then cat "$f"; break; fi; done`,
  );
  const record = parseDrill(stdout);
  return record?.ok ? record : null;
}

/** The newest drill record without the lock (status, evidence). */
export async function readLatestDrill(settings: Settings): Promise<DrillRecord | null> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return null;
  }
  const { stdout } = await backupToolbox(
    settings,
    `ls ${DRILLS_DIR}/*.json 2>/dev/null | sort | tail -1 | while read -r f; do cat "$f"; done`,
    { quick: true },
  );
  return parseDrill(stdout);
}

/** Backup id → whether its most recent drill passed, from the newest 100 drill records (no lock). */
export async function drillResults(settings: Settings): Promise<Map<string, boolean>> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return new Map();
  }
  const { stdout } = await backupToolbox(
    settings,
    `ls ${DRILLS_DIR}/*.json 2>/dev/null | sort | tail -100 | while read -r f; do tr -d '\n' < "$f"; echo; done`,
    { quick: true },
  );
  return latestOutcomes(stdout.split("\n").map(parseDrill));
}

/**
 * Backup id → whether its most recent drill passed, from records oldest first. A drill the host stopped (a
 * full disk: every failed check failed there) says nothing of its backup: the drill before it stands.
 */
export function latestOutcomes(records: readonly (DrillRecord | null)[]): Map<string, boolean> {
  const results = new Map<string, boolean>();
  for (const record of records) {
    if (record && !failedOnHostOnly(record.checks)) {
      results.set(record.backup, record.ok); // oldest first: the newest drill of a backup wins
    }
  }
  return results;
}

function parseDrill(text: string): DrillRecord | null {
  return parseJsonOrNull(text, DrillRecordSchema);
}

/** Written where `status`, `health` and `evidence` read it, passed or failed. */
export async function writeDrillRecord(session: OpsSession, record: DrillRecord): Promise<void> {
  await session.exec(`mkdir -p ${DRILLS_DIR} && cat > ${DRILLS_DIR}/"$1".json`, [record.id], {
    input: JSON.stringify(record, null, 2),
  });
}
