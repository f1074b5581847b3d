/**
 * Retention applied to the local repository: what the policy (retention.ts, pure) decides, with the facts
 * it needs read from the host (running release, deployment history, an unfinished restore's undo) only
 * when something would go. The history is the host's history.jsonl merged with the copy the repository's
 * snapshots carry (history.ts adoptHistory), so a new host decides with the facts the old one had; the
 * rest (imported, bootstrap, undo, snapshot time) is in the listing itself.
 */
import { Settings } from "../../model/settings";
import { progress } from "../core/log";
import { runningVersion } from "../engine/services";
import type { OpsSession } from "../engine/session";
import { sessionSnapshots } from "./catalog";
import { adoptHistory, currentHistory, readHistory } from "./history";
import { readMarker } from "./markers";
import { BackupEntry, FORGET_AND_PRUNE } from "./restic";
import { retention, RetentionInput, rollbackReleases, supersedingDeploy } from "./retention";
import { lastRestoreRecord } from "./schemaRelease";

/**
 * Forgets what the retention policy does not keep, then prunes the data only they used (FORGET_AND_PRUNE).
 */
export async function applyRetention(
  session: OpsSession,
  known?: readonly BackupEntry[],
): Promise<string[]> {
  const { settings } = session;
  const base = {
    backups: known ?? (await sessionSnapshots(session)),
    keep: settings.backup.keep,
    pinned: [...session.pinned],
    periodic: settings.backup,
    now: await session.hostTime(),
  };
  // Rollback targets and the unfinished restore's undo only add to what is kept (and without a last deploy
  // every undo is kept): look them up (history, containers, marker) only when a backup would otherwise go.
  let decision = retention({ ...base, rollbackReleases: [] });
  if (decision.forget.length) {
    await adoptHistory(session, base.backups, "lrestic");
    decision = retention({ ...base, ...(await retentionFacts(settings)) });
  }
  for (const kept of decision.keep.filter((k) => !k.why.startsWith("one of the newest"))) {
    progress(`retention: kept ${kept.entry.id}: ${kept.why}`);
  }
  if (!decision.forget.length) {
    return [];
  }
  const ids = decision.forget.map((b) => b.id);
  progress(`retention: forgetting ${ids.join(", ")}`);
  await session.exec(
    `lrestic ${FORGET_AND_PRUNE} "$@" >/dev/null`,
    decision.forget.map((b) => b.snapshot),
  );
  return ids;
}

/**
 * What retention needs besides the listing: rollback targets, the last deploy, an unfinished restore's undo
 * and the backup it restores.
 */
export async function retentionFacts(
  settings: Settings,
): Promise<
  Pick<
    RetentionInput,
    | "rollbackReleases"
    | "lastDeploy"
    | "deploys"
    | "supersedingDeploy"
    | "restoreUndo"
    | "restoreTarget"
  >
> {
  const [history, marker, restored] = await Promise.all([
    readHistory(settings),
    readMarker(settings, "restore"),
    lastRestoreRecord(settings),
  ]);
  return {
    rollbackReleases: await protectedReleases(settings),
    lastDeploy: history.length ? history[history.length - 1].deployedAt : null,
    deploys: history,
    supersedingDeploy: supersedingDeploy(history, restored),
    restoreUndo: marker?.undo ? [marker.undo] : [],
    restoreTarget: marker ? [marker.id] : [],
  };
}

/**
 * Releases whose pre-deploy backups retention keeps: running and previous (rollback's targets) and the
 * configured one (a deploy that failed before it was recorded is rolled back with its pre-deploy backup).
 */
export async function protectedReleases(settings: Settings): Promise<string[]> {
  return [
    ...rollbackReleases(await runningVersion(settings), await currentHistory(settings)),
    settings.version,
  ];
}
