/**
 * Markers in the backups volume that name an operation left half done (a restore, a rollback). They outlive
 * the edms-ops process that wrote them, so `status` and `health` can say what is unfinished and how to go on,
 * and the next run of the same command can resume instead of starting from the wrong premise.
 */
import { z } from "zod";
import { Settings } from "../../model/settings";
import { parseJsonOrNull } from "../core/json";
import { volumeExists } from "../engine/docker";
import { backupToolbox } from "../engine/toolbox";
import type { OpsSession } from "../engine/session";
import { refuse } from "../core/errors";
import { LAYOUT } from "./layout";
import {
  RestoreMarker,
  RestoreMarkerSchema,
  RollbackMarker,
  RollbackMarkerSchema,
} from "./records";

export const RESTORE_MARKER = LAYOUT.restoreMarker;
export const ROLLBACK_MARKER = LAYOUT.rollbackMarker;

export type { RestoreMarker, RollbackMarker } from "./records";

const MARKERS = {
  restore: { file: RESTORE_MARKER, schema: RestoreMarkerSchema },
  rollback: { file: ROLLBACK_MARKER, schema: RollbackMarkerSchema },
} as const;
type MarkerKind = keyof typeof MARKERS;
type MarkerOf<K extends MarkerKind> = z.output<(typeof MARKERS)[K]["schema"]>;

/** The marker's JSON, or null when there is none (or no backups volume, or a torn write). */
export async function readMarker<K extends MarkerKind>(
  settings: Settings,
  kind: K,
): Promise<MarkerOf<K> | null> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return null;
  }
  const { file, schema } = MARKERS[kind];
  const text = (
    await backupToolbox(settings, 'cat "$1" 2>/dev/null || true', { args: [file], quick: true })
  ).stdout;
  return parseJsonOrNull(text, schema) as MarkerOf<K> | null;
}

/** The unfinished restore's marker, read in the session's own container (the stack lock held), if any. */
export async function sessionRestoreMarker(session: OpsSession): Promise<RestoreMarker | null> {
  const text = (await session.exec('cat "$1" 2>/dev/null || true', [RESTORE_MARKER])).stdout;
  return parseJsonOrNull(text, RestoreMarkerSchema);
}

/**
 * Refuses `what` while a restore is unfinished: a backup now would hold half-restored data (a mixed state
 * that would count as good, and push the restore's undo out of retention); a migration would change it.
 */
export async function refuseDuringRestore(session: OpsSession, what: string): Promise<void> {
  const marker = await sessionRestoreMarker(session);
  if (marker) {
    throw refuse(
      `Not ${what}: a restore is unfinished, so the stack holds half-restored data. Nothing was changed.`,
      `Run the restore again to finish it, or its undo: the ${describeIncompleteRestore(session.settings, marker)}; then retry.`,
    );
  }
}

/**
 * Written whole or not at all (renamed into place), so a kill never leaves a torn marker. Every marker is a
 * JSON object: input that does not end its object (edms-ops killed before or while writing it, so stdin
 * ended early) never replaces the marker there, which a re-run of an interrupted restore still needs.
 */
export function markerScript(): string {
  return 'cat > "$1.new" && [ "$(tail -c 1 "$1.new")" = "}" ] && sync && mv "$1.new" "$1"';
}

/** The flag production's restore and rollback need, for the commands a message names. */
export function confirmFlag(settings: Pick<Settings, "environment">): string {
  return settings.environment === "production" ? " --confirm production" : "";
}

/** What `status` and `health` say about an interrupted restore: how to finish it and how to undo it. */
export function describeIncompleteRestore(settings: Settings, marker: RestoreMarker): string {
  const confirm = confirmFlag(settings);
  return (
    `restore of ${marker.id} incomplete: run \`edms-ops restore ${marker.id} --stack ${settings.stack}${confirm}\` to finish it` +
    (marker.undo
      ? `, or \`edms-ops restore ${marker.undo} --stack ${settings.stack}${confirm}\` to undo it`
      : "")
  );
}

/** The rollback command to run (again), with `--confirm production` on production. */
export function rollbackAgain(settings: Pick<Settings, "stack" | "environment">): string {
  return `edms-ops rollback --previous --stack ${settings.stack}${confirmFlag(settings)}`;
}

/** What `status` says about an unfinished rollback: what is left, and the command that finishes it. */
export function describeIncompleteRollback(settings: Settings, marker: RollbackMarker): string {
  const again = `\`${rollbackAgain(settings)}\``;
  const unfinished = `rollback ${marker.from} → ${marker.to} unfinished (started ${marker.started})`;
  return marker.withoutProxy
    ? `${unfinished}: run ${again} again to finish it (it reverses what is left of ${marker.from}'s migrations and deploys ${marker.to}, or prints the pulumi commands that do)`
    : `${unfinished}: once ${marker.to} is deployed, run ${again} again to reverse ${marker.from}'s migrations`;
}
