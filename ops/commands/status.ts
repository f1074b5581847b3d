import { Command } from "commander";
import { drillVerdict, failedOnHostOnly } from "../store/records";
import { Settings } from "../../model/settings";
import { BackupListing, listBackups, newestOf } from "../store/catalog";
import { isFutureDated } from "../store/retention";
import { runningVersion } from "../engine/services";
import { countOf, externalDatabaseCheck } from "../database/postgres";
import { bucketCheck } from "../backup/bucket";
import { openStack } from "../core/context";
import { inspectContainer, volumeExists } from "../engine/docker";
import { readHistory } from "../store/history";
import { formatBytes, say } from "../core/log";
import { toolbox } from "../engine/toolbox";
import { describeOffsite, offsiteLag } from "../store/offsite";
import {
  describeIncompleteRestore,
  describeIncompleteRollback,
  readMarker,
} from "../store/markers";
import { appContainers } from "../engine/services";
import { currentOperation } from "../engine/lock";
import { readLatestDrill } from "../backup/drill";
import { backupFreshness } from "../reports/health";
import { describeSchedule, scheduleReport } from "../schedule/records";
import { scheduleEnabled } from "../../model/schedule";

export function register(program: Command): void {
  program
    .command("status")
    .description(
      "Environment, running release, users and documents, containers, volumes and sizes, backups and their schedule, deployment history",
    )
    .option("--json", "print as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops status --stack production\n  edms-ops status --stack staging --json | jq .deployments",
    )
    .action(async (opts: { json?: boolean }, command: Command) => {
      const settings = await openStack(command);
      const report = await statusReport(settings);
      if (opts.json) {
        say(JSON.stringify(report, null, 2));
      } else {
        printReport(settings, report);
      }
    });
}

/** An external database's line among the containers: where it is, never a credential. */
const externalDatabaseName = (settings: Settings) =>
  `database ${settings.database?.host}:${settings.database?.port}`;

type StatusReport = Awaited<ReturnType<typeof statusReport>>;

/** Each container of the stack: its health, "running", "stopped" or "missing". */
async function containerStates(settings: Settings): Promise<Record<string, string>> {
  const n = settings.names;
  const containers: Record<string, string> = {};
  // Web and worker by label: behind the proxy there is one web per release (two during a switch).
  if (settings.database) {
    const check = await externalDatabaseCheck(settings);
    containers[externalDatabaseName(settings)] = check.ok
      ? "reachable"
      : `unreachable: ${check.detail}`;
  }
  if (settings.media) {
    // edms-ops' own way in (its rclone config), which backups and restores take; the app's is /health/'s.
    const bucket = await bucketCheck(settings);
    containers[bucket.name] = bucket.ok ? "reachable" : `unreachable: ${bucket.detail}`;
  }
  for (const name of [
    ...(settings.database ? [] : [n.postgresContainer]),
    n.redisContainer,
    ...(settings.proxy.enabled ? [n.proxyContainer] : []),
    ...(await appContainers(settings)),
    ...(scheduleEnabled(settings.backup.schedule) ? [n.schedulerContainer] : []),
  ]) {
    const state = await inspectContainer(name);
    containers[name] = state.exists
      ? state.running
        ? (state.health ?? "running")
        : "stopped"
      : "missing";
  }
  return containers;
}

/** Bytes used by each data volume; null for one that is missing. */
async function volumeSizes(settings: Settings): Promise<Record<string, number | null>> {
  const n = settings.names;
  const volumeNames = [
    ...(settings.database ? [] : [n.postgresVolume]),
    n.mediaVolume,
    n.redisVolume,
    n.backupsVolume,
  ];
  const present: string[] = [];
  for (const v of volumeNames) {
    if (await volumeExists(v)) {
      present.push(v);
    }
  }
  const sizes: Record<string, number | null> = Object.fromEntries(
    volumeNames.map((v) => [v, null]),
  );
  if (present.length) {
    const mounts = present.map((v, i) => ({ volume: v, path: `/v/${i}`, readOnly: true }));
    const { stdout } = await toolbox(
      settings,
      mounts,
      present.map((_, i) => `du -sb /v/${i} | cut -f1`).join("\n"),
    );
    stdout
      .trim()
      .split("\n")
      .forEach((size, i) => (sizes[present[i]] = Number(size)));
  }
  return sizes;
}

/** The stack's backups, or why they cannot be listed: status tells what it can. */
async function backupListing(
  settings: Settings,
): Promise<BackupListing & { readonly problem: string | null }> {
  try {
    return { ...(await listBackups(settings)), problem: null };
  } catch (err) {
    return { complete: [], legacy: [], problem: (err as Error).message };
  }
}

/** The backups part of the report, from what status read. */
function backupsReport(
  { complete, legacy, hostTime, problem }: Awaited<ReturnType<typeof backupListing>>,
  offsite: Awaited<ReturnType<typeof offsiteLag>>,
  drill: Awaited<ReturnType<typeof readLatestDrill>>,
  freshness: Awaited<ReturnType<typeof backupFreshness>>,
) {
  const newest = newestOf(complete, hostTime) ?? null;
  const now = hostTime ?? Date.now();
  return {
    count: complete.length,
    last: newest?.id ?? null,
    lastTime: newest?.time ?? null,
    legacy: legacy.map((l) => l.id),
    /** Backups dated after the host's clock: never counted as newest (retention.ts). */
    futureDated: complete.filter((b) => isFutureDated(b, now)).map((b) => b.id),
    imported: complete.filter((b) => b.imported).map((b) => b.id),
    problem,
    offsite,
    newestGood: freshness.newestGood,
    newestGoodAgeHours: freshness.ageHours,
    lastDrill: drill
      ? {
          id: drill.id,
          backup: drill.backup,
          ok: drill.ok,
          startedAt: drill.startedAt,
          // Failed only where the host stopped it (a full disk): the backup is not at fault.
          onHost: failedOnHostOnly(drill.checks),
        }
      : null,
  };
}

/** Only the database's counts wait for the containers (postgres must be up); everything else is read at once. */
async function statusReport(settings: Settings) {
  const n = settings.names;
  const listing = backupListing(settings);
  const counts = containerStates(settings).then(async (containers) => {
    const pgUp = settings.database
      ? containers[externalDatabaseName(settings)] === "reachable"
      : containers[n.postgresContainer] !== "missing" &&
        containers[n.postgresContainer] !== "stopped";
    const [users, documents] = pgUp
      ? await Promise.all([countOf(settings, "auth_user"), countOf(settings, "documents_document")])
      : [null, null];
    return { containers, users: users ?? null, documents: documents ?? null };
  });
  const [
    { containers, users, documents },
    backups,
    offsite,
    drill,
    freshness,
    runningRelease,
    volumes,
    schedule,
    operation,
    interruptedRestore,
    unfinishedRollback,
    deployments,
  ] = await Promise.all([
    counts,
    listing,
    listing.then(({ complete: listed }) => offsiteLag(settings, listed)),
    readLatestDrill(settings),
    backupFreshness(settings, listing),
    runningVersion(settings),
    volumeSizes(settings),
    scheduleReport(settings),
    currentOperation(settings),
    readMarker(settings, "restore"),
    readMarker(settings, "rollback"),
    readHistory(settings),
  ]);
  return {
    stack: settings.stack,
    environment: settings.environment,
    configuredVersion: settings.version,
    runningVersion: runningRelease,
    users,
    documents,
    containers,
    volumes,
    backups: backupsReport(backups, offsite, drill, freshness),
    schedule,
    operation,
    interruptedRestore,
    unfinishedRollback,
    deployments,
  };
}

function printReport(settings: Settings, report: StatusReport): void {
  const { backups, deployments } = report;
  say(
    `stack ${report.stack} (${report.environment}): running ${report.runningVersion ?? "nothing"}, configured ${report.configuredVersion}`,
  );
  say(`users ${report.users ?? "-"}, documents ${report.documents ?? "-"}`);
  Object.entries(report.containers).forEach(([name, state]) =>
    say(`  container ${name}: ${state}`),
  );
  Object.entries(report.volumes).forEach(([name, size]) =>
    say(`  volume ${name}: ${size === null ? "missing" : formatBytes(size)}`),
  );
  say(
    `backups: ${backups.count}${backups.last ? `, last ${backups.last}` : ""}` +
      (backups.legacy.length ? `, ${backups.legacy.length} in the first release's format` : "") +
      (backups.problem ? ` (cannot be listed: ${backups.problem})` : ""),
  );
  if (backups.futureDated.length) {
    say(
      `  DATED AFTER THE HOST'S CLOCK (never counted as newest; check the clock): ${backups.futureDated.join(", ")}`,
    );
  }
  const drill = backups.lastDrill;
  say(
    `  newest good backup: ${backups.newestGood ? `${backups.newestGood} (${backups.newestGoodAgeHours} h old)` : "none"}; ` +
      `last drill: ${drill ? `${drill.startedAt} of ${drill.backup}: ${drillVerdict(drill)}` : "never"}`,
  );
  say(`  ${describeSchedule(report.schedule)}`);
  if (backups.offsite) {
    describeOffsite(settings.stack, backups.offsite).forEach((line) => say(`  ${line}`));
  }
  if (report.operation) {
    say(`operation in progress: ${report.operation}`);
  }
  if (report.interruptedRestore) {
    say(`WARNING: ${describeIncompleteRestore(settings, report.interruptedRestore)}`);
  }
  if (report.unfinishedRollback) {
    say(`WARNING: ${describeIncompleteRollback(settings, report.unfinishedRollback)}`);
  }
  say(`deployments: ${deployments.length}`);
  deployments
    .slice(-10)
    .forEach((d) =>
      say(`  ${d.deployedAt}  ${d.version}  pre-deploy backup ${d.preDeployBackup ?? "-"}`),
    );
}
