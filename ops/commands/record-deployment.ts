import { Command } from "commander";
import { listBackups } from "../store/catalog";
import { openStack } from "../core/context";
import { currentHistory, recordServing } from "../store/history";
import { say } from "../core/log";
import { readMarker, ROLLBACK_MARKER } from "../store/markers";
import { backupToolbox } from "../engine/toolbox";

export function register(program: Command): void {
  program
    .command("record-deployment")
    .description(
      "Append the deployed release to history.jsonl in the backups volume (version, image, time, migrations, pre-deploy backup)",
    )
    .addHelpText("after", "\nRun by `pulumi up` after the health gate passes.")
    .action(async (_opts: unknown, command: Command) => {
      const settings = await openStack(command);
      const history = await currentHistory(settings);
      const since = history.length ? history[history.length - 1].deployedAt : "";
      const { complete } = await listBackups(settings);
      const preDeploy = complete
        .filter(
          (b) =>
            b.reason === "pre-deploy" &&
            b.target === settings.version &&
            (!since || Date.parse(b.time) > Date.parse(since)),
        )
        .pop();
      const entry = await recordServing(settings, settings.version, {
        preDeployBackup: preDeploy?.id ?? null,
      });
      // A deploy of any other release than a pending rollback's target supersedes that rollback's plan.
      const rollback = await readMarker(settings, "rollback");
      if (rollback && rollback.to !== settings.version) {
        await backupToolbox(settings, 'rm -f "$1"', { writable: true, args: [ROLLBACK_MARKER] });
        say(
          `the unfinished rollback ${rollback.from} → ${rollback.to} is superseded by this deploy`,
        );
      }
      say(`recorded deployment of ${entry.version} (${history.length + 1} on these volumes)`);
    });
}
