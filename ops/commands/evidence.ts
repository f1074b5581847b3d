import { Command } from "commander";
import { openStack } from "../core/context";
import { gatherEvidence } from "../reports/evidence";
import { say } from "../core/log";
import { drillVerdict } from "../store/records";
import { describeAlerts } from "../alerts/report";

export function register(program: Command): void {
  program
    .command("evidence")
    .description(
      "A redacted summary for a security review: stack, retention and schedule, newest snapshots (local and off-host), last repository check, last drill, alert targets (redacted) and the last alert, tool versions. Never contains a secret",
    )
    .option("--json", "print as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops evidence --stack production\n  edms-ops evidence --stack production --json > backup-evidence.json",
    )
    .action(evidenceCommand);
}

async function evidenceCommand(opts: { json?: boolean }, command: Command): Promise<void> {
  const settings = await openStack(command);
  const evidence = await gatherEvidence(settings);
  if (opts.json) {
    say(JSON.stringify(evidence, null, 2));
    return;
  }
  printEvidence(evidence);
}

type Evidence = Awaited<ReturnType<typeof gatherEvidence>>;

function describeSchedule(schedule: Evidence["backup"]["schedule"]): string {
  if (!schedule) {
    return "off (backups before deploys and by hand only)";
  }
  const last = schedule.lastRun
    ? `due ${schedule.lastRun.due}: ${schedule.lastRun.outcome}${schedule.lastRun.backup ? ` ${schedule.lastRun.backup}` : ""}`
    : "none yet";
  return `\`${schedule.expression}\` (${schedule.timezone}) on ${schedule.runsOn} (${schedule.scheduler}); last run ${last}; next ${schedule.nextDue ?? "-"}${schedule.missed ? `; MISSED ${schedule.missed}` : ""}`;
}

function printAlerts(alerts: Evidence["alerts"]): void {
  say(`  ${describeAlerts(alerts)}`);
  if (!alerts) {
    return;
  }
  say(
    `    targets: ${alerts.targets?.join(", ") ?? "not reported yet (the scheduler lists them at its first check)"}`,
  );
  alerts.lastAlert?.deliveries.forEach((d) =>
    say(`    ${d.ok ? "ok  " : "FAIL"} ${d.target}${d.error ? `: ${d.error}` : ""}`),
  );
}

function printEvidence(evidence: Evidence): void {
  const b = evidence.backup;
  say(
    `Backup evidence for stack ${evidence.stack} (${evidence.environment}), ${evidence.generatedAt}`,
  );
  say(
    `  release: configured ${evidence.release.configured}, running ${evidence.release.running ?? "-"}`,
  );
  say(`  docker host: ${evidence.dockerHost}`);
  say(`  repository: ${b.repository}; encryption: ${b.encryption}`);
  say(
    `  pre-deploy backup: ${b.beforeDeploy ? "yes" : "no"}, drilled before migrate: ${b.drillBeforeDeploy ? "yes" : "no"}`,
  );
  say(
    `  retention: ${Object.entries(b.retention)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(", ")}`,
  );
  say(`  schedule: ${describeSchedule(b.schedule)}`);
  say(`  off-host: ${b.offsite ?? "none"}`);
  for (const [where, s] of Object.entries(evidence.snapshots)) {
    if (!s) {
      continue;
    }
    say(`  ${where} snapshots: ${s.count}${s.problem ? ` (cannot be listed: ${s.problem})` : ""}`);
    s.newest.forEach((n) => say(`    ${n.time}  ${n.id}  release ${n.release ?? "-"}`));
  }
  const check = evidence.lastRepositoryCheck;
  say(
    `  last repository check: ${check ? `${check.checkedAt} ${check.ok ? "ok" : "FAILED"} (${check.detail}; during ${check.during})` : "never (run `edms-ops verify <id>`)"}`,
  );
  const drill = evidence.lastDrill;
  say(
    `  last drill: ${drill ? `${drill.startedAt} of ${drill.backup} (release ${drill.release ?? "-"}, ${drill.trigger}, by ${drill.ranBy}): ${drillVerdict(drill)}` : "never (run `edms-ops drill latest`)"}`,
  );
  drill?.checks.forEach((c) => say(`    ${c.ok ? "ok  " : c.host ? "HOST" : "FAIL"} ${c.name}`));
  printAlerts(evidence.alerts);
  say(
    `  tools: ${Object.entries(evidence.tools)
      .map(([k, v]) => `${k} ${v ?? "?"}`)
      .join("; ")}`,
  );
}
