/**
 * `edms-ops evidence`: what a security review asks of a backup setup, gathered without the stack lock and
 * without any secret. Everything here comes from Settings (which never hold a secret: the off-host
 * repository is kept as its redacted display form), restic's snapshot listings (ids, times, tags), the
 * records edms-ops writes in the backups volume (last repository check, drills) and tool version strings.
 * The keys in `/backups/.keys` are never read.
 */
import * as fs from "fs";
import * as path from "path";
import { redactRepository, Settings } from "../../model/settings";
import { listBackups } from "../store/catalog";
import { runningVersion } from "../engine/services";
import { psql } from "../database/postgres";
import { docker, volumeExists } from "../engine/docker";
import { DrillRecord, readLatestDrill } from "../backup/drill";
import { listOffsite } from "../store/offsite";
import { BackupEntry } from "../store/restic";
import { anyRunningWeb } from "../engine/services";
import { backupToolbox } from "../engine/toolbox";
import { LAST_CHECK_FILE } from "../backup/repositoryCheck";
import { failedOnHostOnly, RepositoryCheck, RepositoryCheckSchema } from "../store/records";
import { parseJsonOrNull, tryParseJson } from "../core/json";
import { scheduleReport } from "../schedule/records";
import { AlertReport, alertReport } from "../alerts/report";
import { z } from "zod";

/** Newest snapshots shown per repository. */
const NEWEST = 5;

export interface SnapshotSummary {
  readonly count: number;
  readonly newest: { id: string; time: string; reason: string; release: string | null }[];
  readonly problem?: string;
}

export interface Evidence {
  readonly generatedAt: string;
  readonly stack: string;
  readonly environment: string;
  readonly release: { readonly configured: string; readonly running: string | null };
  readonly dockerHost: string;
  readonly backup: {
    readonly repository: string;
    readonly encryption: string;
    readonly beforeDeploy: boolean;
    readonly drillBeforeDeploy: boolean;
    readonly retention: Record<string, unknown>;
    /** Scheduled backups (`edms:backup.schedule`); null when off. */
    readonly schedule: {
      readonly expression: string;
      readonly timezone: "UTC";
      readonly runsOn: string;
      readonly scheduler: string | null;
      readonly nextDue: string | null;
      readonly lastRun: {
        readonly due: string;
        readonly finished: string;
        readonly outcome: string;
        readonly backup: string | null;
        readonly error: string | null;
      } | null;
      readonly lastOkDue: string | null;
      readonly missed: string | null;
    } | null;
    readonly offsite: string | null;
  };
  readonly snapshots: { readonly local: SnapshotSummary; readonly offsite: SnapshotSummary | null };
  readonly lastRepositoryCheck: RepositoryCheck | null;
  readonly lastDrill: {
    readonly id: string;
    readonly backup: string;
    readonly release: string | null;
    readonly trigger: string;
    readonly ranBy: string;
    readonly startedAt: string;
    readonly finishedAt: string;
    readonly ok: boolean;
    /** Every failed check failed on the host (a full disk, memory): nothing is known of the backup. */
    readonly onHost: boolean;
    readonly checks: { name: string; ok: boolean; host: boolean; seconds: number }[];
  } | null;
  /** `edms:alerts`: targets redacted (scheme and host), what is firing, the last alert sent; null: none. */
  readonly alerts: AlertReport | null;
  readonly tools: Record<string, string | null>;
}

function summary(entries: readonly BackupEntry[]): SnapshotSummary {
  return {
    count: entries.length,
    newest: entries
      .slice(-NEWEST)
      .reverse()
      .map((b) => ({ id: b.id, time: b.time, reason: b.reason, release: b.release })),
  };
}

async function firstLine(args: readonly string[]): Promise<string | null> {
  const result = await docker(args, { allowFailure: true });
  return result.code === 0 ? result.stdout.trim().split("\n")[0] || null : null;
}

const PackageSchema = z.looseObject({ version: z.string().optional() });

function packageVersion(): string | null {
  for (const dir of [path.resolve(__dirname, "../.."), path.resolve(__dirname, "../../..")]) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = tryParseJson(fs.readFileSync(file, "utf8"), PackageSchema);
      return pkg.ok ? (pkg.value.version ?? null) : null;
    }
  }
  return null;
}

async function tools(settings: Settings): Promise<Record<string, string | null>> {
  const web = await anyRunningWeb(settings);
  const restic = await backupToolbox(settings, "restic version", { allowFailure: true });
  return {
    "edms-ops": packageVersion(),
    node: process.version,
    restic: restic.code === 0 ? restic.stdout.trim() : null,
    postgres: await psql(settings, "SELECT version();").then(
      ([version]) => version ?? null,
      () => null,
    ),
    django: web
      ? await firstLine([
          "exec",
          web.name,
          "python3",
          "-c",
          "import django; print(django.get_version())",
        ])
      : null,
    dockerEngine: await firstLine(["version", "--format", "{{.Server.Version}}"]),
  };
}

export function drillSummary(record: DrillRecord | null): Evidence["lastDrill"] {
  if (!record) {
    return null;
  }
  const { id, backup, release, trigger, ranBy, startedAt, finishedAt, ok } = record;
  return {
    id,
    backup,
    release,
    trigger,
    ranBy,
    startedAt,
    finishedAt,
    ok,
    onHost: failedOnHostOnly(record.checks),
    checks: record.checks.map((c) => ({
      name: c.name,
      ok: c.ok,
      host: c.host === true,
      seconds: c.seconds,
    })),
  };
}

function scheduleEvidence(
  settings: Settings,
  schedule: Awaited<ReturnType<typeof scheduleReport>>,
): Evidence["backup"]["schedule"] {
  if (!schedule.enabled) {
    return null;
  }
  const last = schedule.lastRun;
  return {
    expression: schedule.schedule,
    timezone: schedule.timezone,
    runsOn: `the Docker host, container ${settings.names.schedulerContainer}`,
    scheduler: schedule.scheduler,
    nextDue: schedule.nextDue,
    lastRun: last && {
      due: last.due,
      finished: last.finished,
      outcome: last.outcome,
      backup: last.backup,
      error: last.error,
    },
    lastOkDue: schedule.lastOk?.due ?? null,
    missed: schedule.missed,
  };
}

export async function gatherEvidence(settings: Settings): Promise<Evidence> {
  const backups = await listBackups(settings, { legacy: false }).then(
    (l) => summary(l.complete),
    (err: Error) => ({ count: 0, newest: [], problem: err.message }),
  );
  const offsite = settings.backup.offsite
    ? await listOffsite(settings).then(
        ({ backups }) => summary(backups),
        (err: Error) => ({
          count: 0,
          newest: [],
          problem: err.message,
        }),
      )
    : null;
  const check = (await volumeExists(settings.names.backupsVolume))
    ? (
        await backupToolbox(settings, `cat ${LAST_CHECK_FILE} 2>/dev/null || true`, { quick: true })
      ).stdout.trim()
    : "";
  const { beforeDeploy, drillBeforeDeploy, keep, keepDaily, keepWeekly, keepMonthly } =
    settings.backup;
  const schedule = await scheduleReport(settings);
  return {
    generatedAt: new Date().toISOString(),
    stack: settings.stack,
    environment: settings.environment,
    release: { configured: settings.version, running: await runningVersion(settings) },
    dockerHost: settings.dockerHost ?? "local socket",
    backup: {
      repository: `restic, volume ${settings.names.backupsVolume}`,
      encryption:
        "restic (AES-256-CTR + Poly1305, key derived by scrypt); password kept as a Pulumi secret and a root-only file on the Docker host",
      beforeDeploy,
      drillBeforeDeploy,
      retention: {
        keep,
        ...(keepDaily ? { keepDaily } : {}),
        ...(keepWeekly ? { keepWeekly } : {}),
        ...(keepMonthly ? { keepMonthly } : {}),
        rollbackTargets: "pre-deploy backups of the running and previous release",
      },
      schedule: scheduleEvidence(settings, schedule),
      offsite: settings.backup.offsite ? redactRepository(settings.backup.offsite.display) : null,
    },
    snapshots: { local: backups, offsite },
    lastRepositoryCheck: parseJsonOrNull(check ?? "", RepositoryCheckSchema),
    lastDrill: drillSummary(await readLatestDrill(settings)),
    alerts: await alertReport(settings),
    tools: await tools(settings),
  };
}
