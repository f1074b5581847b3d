/**
 * The records edms-ops keeps in the backups volume (where each lives: layout.ts), as zod schemas: the one
 * definition of their shape, checked on every read. Types are inferred from the schemas. Objects are loose
 * (unknown keys pass through), so a record written by a newer release still reads, and a marker rewritten
 * by this one keeps what it did not know about.
 */
import { z } from "zod";

const stringMap = z.record(z.string(), z.string());

/** One successful deploy (history.jsonl). */
export const DeploymentSchema = z.looseObject({
  version: z.string(),
  /** The live web's image id (`sha256:…`, local to the host). */
  image: z.string(),
  /**
   * The release as pulled: `<backendImage>:<version>@sha256:…` when `edms:releaseDigest` pinned it (rollback
   * configures that digest again), else `<backendImage>:<version>`. Absent from earlier records.
   */
  reference: z.string().optional(),
  deployedAt: z.string(),
  stack: z.string(),
  environment: z.string(),
  postgresVolume: z.string(),
  migrations: stringMap,
  preDeployBackup: z.string().nullable(),
  /** Set on the entry `rollback` writes once it has reversed the newer release's migrations. */
  rolledBackFrom: z.string().optional(),
});
export type Deployment = z.output<typeof DeploymentSchema>;

/**
 * What a new database held right after `bootstrap` loaded its fixtures and superuser (bootstrap.json): a
 * backup whose row counts are exactly these holds nothing else (ops/store/bootstrap.ts).
 */
export const BootstrapRecordSchema = z.looseObject({
  postgresVolume: z.string(),
  tables: z.record(z.string(), z.number()),
  recordedAt: z.string(),
});
export type BootstrapRecord = z.output<typeof BootstrapRecordSchema>;

/** The scheduler (re)started: dues before `at` count as handled (run, caught up, or before it existed). */
export const ScheduleStartSchema = z.looseObject({
  kind: z.literal("start"),
  schedule: z.string(),
  at: z.string(),
  next: z.string().nullable(),
});
export type ScheduleStart = z.output<typeof ScheduleStartSchema>;

/**
 * ok: a backup was taken; nothing: the database has no schema yet (fresh deploy); skipped: the stack's lock
 * stayed busy for the whole wait, or a restore was unfinished; failed: the backup failed or was interrupted
 * (`error` says why).
 */
export const RunOutcomeSchema = z.enum(["ok", "nothing", "skipped", "failed"]);
export type RunOutcome = z.output<typeof RunOutcomeSchema>;

export const ScheduleRunSchema = z.looseObject({
  kind: z.literal("run"),
  schedule: z.string(),
  /** The fire time this attempt is for (UTC). */
  due: z.string(),
  started: z.string(),
  finished: z.string(),
  outcome: RunOutcomeSchema,
  ok: z.boolean(),
  /** Run at start-up for a due that passed while the scheduler was not running. */
  catchUp: z.boolean(),
  backup: z.string().nullable(),
  snapshot: z.string().nullable(),
  error: z.string().nullable(),
});
export type ScheduleRun = z.output<typeof ScheduleRunSchema>;

/** One line of schedule.jsonl. */
export const ScheduleRecordSchema = z.discriminatedUnion("kind", [
  ScheduleStartSchema,
  ScheduleRunSchema,
]);
export type ScheduleRecord = z.output<typeof ScheduleRecordSchema>;

export const DrillCheckSchema = z.looseObject({
  name: z.string(),
  ok: z.boolean(),
  detail: z.string(),
  seconds: z.number(),
  /** Failed on the host (a full disk, memory, the server going away), not on the backup: see hostFault.ts. */
  host: z.boolean().optional(),
});
export type DrillCheck = z.output<typeof DrillCheckSchema>;

/** The checks that ran and failed (not those skipped because an earlier one failed). */
export function failedChecks(checks: readonly DrillCheck[]): DrillCheck[] {
  return checks.filter((c) => !c.ok && !c.detail.startsWith("not run"));
}

/** Every check that failed failed on the host: the drill says nothing of the backup. */
export function failedOnHostOnly(checks: readonly DrillCheck[]): boolean {
  const failed = failedChecks(checks);
  return failed.length > 0 && failed.every((c) => c.host === true);
}

/** A drill's outcome in words: one the host stopped is not the backup's failure. */
export function drillVerdict(drill: { readonly ok: boolean; readonly onHost: boolean }): string {
  if (drill.ok) {
    return "passed";
  }
  return drill.onHost ? "could not finish (the host failed, not the backup)" : "FAILED";
}

/** One drill, passed or failed (drills/<time>-drill.json). */
export const DrillRecordSchema = z.looseObject({
  format: z.literal(1),
  id: z.string(),
  stack: z.string(),
  backup: z.string(),
  snapshot: z.string(),
  /** Release whose code ran against the restored data (the backup's own). */
  release: z.string().nullable(),
  /** Why it ran: `manual`, `pre-deploy`, … */
  trigger: z.string(),
  /** user@host of the edms-ops process. */
  ranBy: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  seconds: z.number(),
  /** Every check of the backup passed (the rehearsal is not one: a failing migration is the release's). */
  ok: z.boolean(),
  checks: z.array(DrillCheckSchema),
  /** The pre-deploy drill's run of the new release's `migrate` on the restored data (release.ts). */
  rehearsal: DrillCheckSchema.optional(),
  media: z.looseObject({
    files: z.number(),
    /** sha256 of every media file checked, by path relative to the media root. */
    checksums: stringMap,
    /** Files added or changed since the previous passed drill's snapshot; null: no usable previous drill. */
    changedSincePreviousDrill: z.number().nullable(),
    previousDrill: z.string().nullable(),
  }),
});
export type DrillRecord = z.output<typeof DrillRecordSchema>;

/** The newest `restic check` of the local repository (last-check.json; written by verify, so by restore). */
export const RepositoryCheckSchema = z.looseObject({
  checkedAt: z.string(),
  ok: z.boolean(),
  detail: z.string(),
  during: z.string(),
});
export type RepositoryCheck = z.output<typeof RepositoryCheckSchema>;

/**
 * The newest off-host copy (offsite-copy.json), written by the copy container itself: at its start
 * (finished and ok null) and at its end. A record left with `finished: null` and no copy running was cut.
 */
export const OffsiteCopySchema = z.looseObject({
  started: z.string(),
  finished: z.string().nullable(),
  ok: z.boolean().nullable(),
  error: z.string().nullable(),
});
export type OffsiteCopy = z.output<typeof OffsiteCopySchema>;

/** An unfinished restore (.restore-in-progress): what it restores and the undo backup taken first. */
export const RestoreMarkerSchema = z.looseObject({
  id: z.string(),
  undo: z.string().nullable(),
  started: z.string().optional(),
});
export type RestoreMarker = z.output<typeof RestoreMarkerSchema>;

/**
 * The last restore that swapped a backup's database in (last-restore.json): the schema the database has held
 * since, for backup labels (schemaRelease.ts) when no deployment on record has it.
 */
export const RestoreRecordSchema = z.looseObject({
  id: z.string(),
  /** The restored backup's release label (null: it had none). */
  release: z.string().nullable(),
  /** The restored backup's migration state. */
  migrations: stringMap,
  restoredAt: z.string(),
});
export type RestoreRecord = z.output<typeof RestoreRecordSchema>;

/**
 * An unfinished rollback's plan (.rollback-in-progress). Behind the proxy: its code switch ran (or is
 * running), its migrations are not yet reversed. Without it (`withoutProxy`): its data steps ran or are
 * running, the redeploy of `to` is left; the deploy of `to` with nothing left to reverse ends it.
 */
export const RollbackMarkerSchema = z.looseObject({
  /** The release rolled back from: its image holds the migrations to reverse. */
  from: z.string(),
  fromImage: z.string(),
  to: z.string(),
  /** `to`'s recorded release reference (Deployment.reference), whose digest the redeploy configures. */
  toReference: z.string().optional(),
  /** Migration state recorded when `to` was last deployed before `from`. */
  migrations: stringMap,
  started: z.string(),
  /** Without the proxy the data steps go first, then the redeploy (rollback.ts rollbackWithoutProxy). */
  withoutProxy: z.boolean().optional(),
});
export type RollbackMarker = z.output<typeof RollbackMarkerSchema>;

/** What an alert says, as the webhook receives it (JSON) and Apprise's title and body render it. */
export const AlertMessageSchema = z.looseObject({
  stack: z.string(),
  environment: z.string(),
  /** `backup-failed`, `rpo-exceeded`, … (ops/alerts/evaluate.ts), or `test`. */
  condition: z.string(),
  state: z.enum(["firing", "reminder", "resolved", "test"]),
  summary: z.string(),
  detail: z.string(),
  /** The command an operator runs next. */
  next: z.string(),
  at: z.string(),
});
export type AlertMessage = z.output<typeof AlertMessageSchema>;

/** One target's answer to one message: redacted target (scheme and host only), never its URL. */
export const AlertDeliverySchema = z.looseObject({
  target: z.string(),
  ok: z.boolean(),
  error: z.string().nullable(),
});
export type AlertDelivery = z.output<typeof AlertDeliverySchema>;

/** A condition alerted on and still holding: when it started, when a person was last told. */
export const ActiveAlertSchema = z.looseObject({
  since: z.string(),
  lastSent: z.string(),
  summary: z.string(),
  /** Consecutive checks that found it clear (it resolves at RESOLVE_AFTER_CHECKS; decide.ts). */
  clearChecks: z.number().optional(),
});
export type ActiveAlert = z.output<typeof ActiveAlertSchema>;

/** The scheduler's alert state (alerts.json): rewritten whole after each message sent. */
export const AlertStateSchema = z.looseObject({
  format: z.literal(1),
  /** Condition → its open alert. */
  active: z.record(z.string(), ActiveAlertSchema),
  /** The targets the scheduler has, redacted. */
  targets: z.array(z.string()),
  lastAlert: z
    .looseObject({ message: AlertMessageSchema, deliveries: z.array(AlertDeliverySchema) })
    .nullable(),
  /** Conditions resolved within the last hour, and how many checks in a row each has held since. */
  recent: z
    .record(z.string(), z.looseObject({ resolvedAt: z.string(), firingChecks: z.number() }))
    .optional(),
  /** When this state was decided (the scheduler keeps the newest of this file and its memory). */
  updatedAt: z.string().optional(),
});
export type AlertState = z.output<typeof AlertStateSchema>;
