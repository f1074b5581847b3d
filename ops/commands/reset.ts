import { Command } from "commander";
import { createBackup } from "../backup/create";
import { hasSchema } from "../database/postgres";
import { connect, requireConfirm, stackOf } from "../core/context";
import { docker, inspectContainer } from "../engine/docker";
import { refuse } from "../core/errors";
import { progress, say } from "../core/log";
import { appContainers } from "../engine/services";

export function register(program: Command): void {
  program
    .command("reset")
    .description(
      "Fresh start for dev/staging: back up, stop the stack, remove its postgres, redis and media volumes (backups are kept). Always refused on production",
    )
    .option("--confirm <stack>", "the stack name again, to confirm")
    .option("--no-backup", "skip the backup taken first")
    .addHelpText(
      "after",
      "\nExample:\n  edms-ops reset --stack staging --confirm staging && npm run up -- --stack staging",
    )
    .action(resetCommand);
}

async function resetCommand(
  opts: { confirm?: string; backup: boolean },
  command: Command,
): Promise<void> {
  // Decided by the stack file first, before any engine call (an unreachable host or a stray DOCKER_HOST
  // must not turn the refusal into a connection error), then by the labels on the volumes themselves.
  const settings = stackOf(command);
  const productionRefusal = () =>
    refuse(
      `reset is refused on production (stack \`${settings.stack}\`): production data is never reinitialised, whatever flags are given. ` +
        "Nothing was changed.",
      `To return to an earlier state, restore a backup: \`edms-ops backups list --stack ${settings.stack}\`, then ` +
        `\`edms-ops restore <id> --stack ${settings.stack} --confirm production\`.`,
    );
  if (settings.environment === "production") {
    throw productionRefusal();
  }
  await connect(settings);
  const n = settings.names;
  const volumes = [n.postgresVolume, n.redisVolume, n.mediaVolume];
  const labelled = await docker(
    ["volume", "inspect", "--format", '{{index .Labels "edms.environment"}}', ...volumes],
    { allowFailure: true },
  );
  if (labelled.stdout.split("\n").includes("production")) {
    throw productionRefusal();
  }
  requireConfirm(settings, opts.confirm, "reset");
  const containers = [
    // First: a scheduled backup must not run against the stack while it is taken apart. Always named (a
    // scheduler of an earlier schedule may still run); `rm -f` of a missing one is ignored below.
    n.schedulerContainer,
    ...(await appContainers(settings)),
    ...(settings.proxy.enabled ? [n.proxyContainer] : []),
    n.redisContainer,
    n.postgresContainer,
  ];
  say(
    `Will reset ${settings.stack}: ${opts.backup ? "back up, then " : ""}remove containers ${containers.join(", ")} and volumes ${volumes.join(", ")}.`,
  );
  say(`Kept: ${n.backupsVolume} (backups and deployment history).`);
  let backupId: string | undefined;
  if (
    opts.backup &&
    (await inspectContainer(n.postgresContainer)).running &&
    (await hasSchema(settings))
  ) {
    backupId = (await createBackup(settings, { reason: "pre-reset" }))?.entry.id;
  }
  progress("removing containers");
  await docker(["rm", "-f", ...containers], { allowFailure: true });
  progress("removing data volumes");
  await docker(["volume", "rm", "-f", ...volumes]);
  say(
    `Reset ${settings.stack}: the next \`pulumi up --refresh --stack ${settings.stack}\` is a fresh first deploy (superuser and fixtures).`,
  );
  if (backupId) {
    say(`To undo, deploy, then run: edms-ops restore ${backupId} --stack ${settings.stack}`);
  }
}
