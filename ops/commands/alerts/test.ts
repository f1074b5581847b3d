import { Command, Option } from "commander";
import { SCHEDULER_OPS_ENTRY } from "../../../model/containers";
import { alertTargetCount, Settings } from "../../../model/settings";
import { sendTestAlert } from "../../alerts/check";
import { hasTargets, readTargets } from "../../alerts/send";
import { connect, stackOf } from "../../core/context";
import { failure, refuse } from "../../core/errors";
import { say, scrub } from "../../core/log";
import { docker, inspectContainer } from "../../engine/docker";
import type { AlertDelivery } from "../../store/records";

export function register(alerts: Command): void {
  alerts
    .command("test")
    .description(
      "Send a test message to every alert target, from the scheduler container on the Docker host (where the targets are); prints each target redacted and whether it was reached",
    )
    .option("--json", "print the message and the deliveries as JSON")
    // Inside the scheduler container, where `docker exec` runs this command again.
    .addOption(new Option("--on-host").hideHelp())
    .addHelpText("after", "\nExample:\n  edms-ops alerts test --stack production")
    .action(alertsTestCommand);
}

function printDeliveries(deliveries: readonly AlertDelivery[]): void {
  for (const d of deliveries) {
    say(`${d.ok ? "ok  " : "FAIL"} ${d.target}${d.error ? `: ${d.error}` : ""}`);
  }
}

/** In the scheduler container: read the uploaded targets and send. */
async function sendHere(settings: Settings, json: boolean): Promise<void> {
  const targets = readTargets();
  if (!hasTargets(targets)) {
    throw refuse(
      `No alert targets in ${settings.names.schedulerContainer}.`,
      `Set them with \`pulumi config set --secret --path edms:alerts.webhook …\` and run \`pulumi up --stack ${settings.stack}\`: it uploads them.`,
    );
  }
  const { message, deliveries } = await sendTestAlert(await connect(settings), targets);
  if (json) {
    say(JSON.stringify({ message, deliveries }, null, 2));
  } else {
    printDeliveries(deliveries);
  }
  if (deliveries.some((d) => !d.ok)) {
    throw failure(
      `${deliveries.filter((d) => !d.ok).length} of ${deliveries.length} alert target(s) were not reached.`,
      "Check each FAIL line's target in `edms:alerts` (its URL and the network from the Docker host), `pulumi up`, then run `edms-ops alerts test` again.",
    );
  }
}

async function alertsTestCommand(
  opts: { json?: boolean; onHost?: boolean },
  command: Command,
): Promise<void> {
  const settings = stackOf(command);
  if (opts.onHost) {
    await sendHere(settings, opts.json === true);
    return;
  }
  if (alertTargetCount(settings.alerts) === 0) {
    throw refuse(
      `Stack ${settings.stack} has no alert targets (\`edms:alerts\`).`,
      "Set one, e.g. `pulumi config set --secret --path edms:alerts.webhook https://hooks.example.com/…`, then `pulumi up`.",
    );
  }
  await connect(settings);
  const scheduler = settings.names.schedulerContainer;
  if (!(await inspectContainer(scheduler)).running) {
    throw refuse(
      `The scheduler container ${scheduler} is not running: alerts are sent from it.`,
      `Run \`pulumi up --stack ${settings.stack}\` (or \`docker start ${scheduler}\`), then retry.`,
    );
  }
  const args = ["alerts", "test", "--on-host", "--stack", settings.stack];
  const result = await docker(
    ["exec", scheduler, ...SCHEDULER_OPS_ENTRY, ...args, ...(opts.json ? ["--json"] : [])],
    { allowFailure: true },
  );
  process.stdout.write(scrub(result.stdout));
  process.stderr.write(scrub(result.stderr));
  if (result.code !== 0) {
    throw failure(
      `The test message was not sent to every target (exit ${result.code}, above).`,
      "Fix what the lines above name, then run `edms-ops alerts test` again.",
    );
  }
}
