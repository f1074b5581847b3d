/**
 * Markers in the backups volume that name an operation left half done (a restore, a rollback). They outlive
 * the edms-ops process that wrote them, so `status` and `health` can say what is unfinished and how to go on,
 * and the next run of the same command can resume instead of starting from the wrong premise.
 */
import { Settings } from "../../model/settings";
import { volumeExists } from "../engine/docker";
import { backupToolbox } from "../engine/toolbox";

export const RESTORE_MARKER = "/backups/.restore-in-progress";
export const ROLLBACK_MARKER = "/backups/.rollback-in-progress";

export interface RestoreMarker {
  readonly id: string;
  readonly undo: string | null;
  readonly started?: string;
}

export interface RollbackMarker {
  /** The release rolled back from: its image holds the migrations to reverse. */
  readonly from: string;
  readonly fromImage: string;
  readonly to: string;
  /** Migration state recorded when `to` was last deployed before `from`. */
  readonly migrations: Record<string, string>;
  readonly started: string;
}

/** The marker's JSON, or null when there is none (or no backups volume, or a torn write). */
export async function readMarker<T>(settings: Settings, file: string): Promise<T | null> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return null;
  }
  const text = (await backupToolbox(settings, 'cat "$1" 2>/dev/null || true', { args: [file] }))
    .stdout;
  try {
    return text.trim() ? (JSON.parse(text) as T) : null;
  } catch {
    return null;
  }
}

/** Written whole or not at all (renamed into place), so a kill never leaves a torn marker. */
export function markerScript(): string {
  return 'cat > "$1.new" && sync && mv "$1.new" "$1"';
}

/** What `status` and `health` say about an interrupted restore: how to finish it and how to undo it. */
export function describeIncompleteRestore(settings: Settings, marker: RestoreMarker): string {
  const confirm = settings.environment === "production" ? " --confirm production" : "";
  return (
    `restore of ${marker.id} incomplete: run \`edms-ops restore ${marker.id} --stack ${settings.stack}${confirm}\` to finish it` +
    (marker.undo
      ? `, or \`edms-ops restore ${marker.undo} --stack ${settings.stack}${confirm}\` to undo it`
      : "")
  );
}

/** What `status` says about a rollback whose code switch ran but whose migrations are not yet reversed. */
export function describeIncompleteRollback(settings: Settings, marker: RollbackMarker): string {
  return (
    `rollback ${marker.from} → ${marker.to} unfinished (started ${marker.started}): once ${marker.to} is deployed, ` +
    `run \`edms-ops rollback --previous --stack ${settings.stack}\` again to reverse ${marker.from}'s migrations`
  );
}
