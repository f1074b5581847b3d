import { Command } from "commander";
import { spawnSync } from "child_process";
import { createBackup, listBackups } from "../lib/backups";
import { migrationState, requirePostgres } from "../lib/database";
import { manage, releaseImage } from "../lib/django";
import { OpsError, refuse } from "../lib/errors";
import { currentHistory } from "../lib/history";
import { progress, say } from "../lib/log";
import { restoreBackup } from "../lib/restore";
import { projectDirOf } from "../lib/stack";
import { globalOptions, openStack } from "../lib/context";

export function register(program: Command): void {
  program
    .command("rollback")
    .description(
      "Go back to the previous release: reverse migrations to its recorded state (or --restore its pre-deploy backup), then redeploy it",
    )
    .requiredOption("--previous", "roll back to the release deployed before the configured one")
    .option("--backup-first", "take a backup before changing anything")
    .option(
      "--restore",
      "restore the pre-deploy backup of the configured release instead of reversing migrations (loses data written since)",
    )
    .option("--confirm <stack>", "with --restore on production: --confirm production")
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops rollback --previous --backup-first --stack production\n  edms-ops rollback --previous --restore --stack staging",
    )
    .action(
      async (
        opts: { backupFirst?: boolean; restore?: boolean; confirm?: string },
        command: Command,
      ) => {
        const settings = await openStack(command);
        await requirePostgres(settings);
        const history = await currentHistory(settings);
        // The configured release is the one being rolled back (it may have failed before being recorded).
        const target = [...history].reverse().find((d) => d.version !== settings.version);
        if (!target) {
          throw new OpsError(
            `No earlier release than ${settings.version} in the deployment history of ${settings.stack}; nothing to roll back to.`,
            2,
          );
        }
        if (
          opts.restore &&
          settings.environment === "production" &&
          opts.confirm !== "production"
        ) {
          throw refuse(
            "rollback --restore on production discards data written since the deploy and needs `--confirm production`. Nothing was changed.",
          );
        }
        const current = await migrationState(settings);
        const steps = Object.keys(current)
          .filter((app) => current[app] !== target.migrations[app])
          .map((app) => ({ app, to: target.migrations[app] ?? "zero" }));
        say(
          `Will roll ${settings.stack} back from ${settings.version} to ${target.version} (deployed ${target.deployedAt}):`,
        );
        if (opts.backupFirst) {
          say("  - back up the current state");
        }
        if (opts.restore) {
          say(`  - restore the pre-deploy backup of ${settings.version}`);
        } else {
          steps.forEach((s) =>
            say(`  - migrate ${s.app} ${s.to} (with ${releaseImage(settings)})`),
          );
          if (!steps.length) {
            say("  - no migrations to reverse");
          }
        }
        say(`  - redeploy ${target.version}`);
        const backup = opts.backupFirst
          ? ((await createBackup(settings, { reason: "pre-rollback" }))?.entry ?? null)
          : null;
        if (opts.restore) {
          const { complete } = await listBackups(settings);
          const preDeploy = complete
            .filter((b) => b.reason === "pre-deploy" && b.target === settings.version)
            .pop();
          if (!preDeploy) {
            throw new OpsError(
              `No pre-deploy backup of ${settings.version} found; use rollback without --restore, or restore a backup by id.`,
            );
          }
          await restoreBackup(settings, preDeploy);
        } else {
          for (const step of steps) {
            progress(`migrate ${step.app} ${step.to}`);
            await manage(
              settings,
              releaseImage(settings),
              ["migrate", step.app, step.to, "--noinput"],
              `reversing ${step.app}`,
            );
          }
        }
        await redeploy(settings.stack, target.version, projectDirOf(globalOptions(command)));
        if (backup) {
          say(`The state before the rollback is backup ${backup.id}.`);
        }
      },
    );
}

/** Sets edms:version back and runs `pulumi up`; without the Pulumi CLI, prints the commands left to run. */
async function redeploy(stack: string, version: string, projectDir: string): Promise<void> {
  const commands = [
    `pulumi config set edms:version ${version} --stack ${stack}`,
    `pulumi up --stack ${stack} --yes`,
  ];
  const probe = spawnSync("pulumi", ["version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    say("Data steps done. The Pulumi CLI is not installed here; to finish the rollback run:");
    commands.forEach((c) => say(`  ${c}`));
    return;
  }
  progress(`redeploying ${version} through the Automation API`);
  // Loaded only here: the Automation API is heavy and every other command does without it.
  const { LocalWorkspace } = await import("@pulumi/pulumi/automation");
  try {
    const workspace = await LocalWorkspace.selectStack({ stackName: stack, workDir: projectDir });
    await workspace.setConfig("edms:version", { value: version });
    await workspace.up({ onOutput: (out) => process.stderr.write(out) });
  } catch (err) {
    throw new OpsError(
      `redeploy of ${version} failed: ${(err as Error).message}\nRun by hand: ${commands.join(" && ")}`,
    );
  }
  say(`Rolled back to ${version}.`);
}
