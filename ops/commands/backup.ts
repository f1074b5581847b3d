import { Command, Option } from "commander";
import { BackupResult, createBackup } from "../backup/create";
import { openStack } from "../core/context";
import { say } from "../core/log";
import { Settings, resourceNames } from "../../model/settings";
import { docker, volumeExists } from "../engine/docker";
import { startPostgres } from "../database/postgres";
import { failure } from "../core/errors";
import { REASONS } from "../../model/hooks";

/**
 * Settings naming the data volumes the running postgres container uses, when those are of an earlier data
 * generation than the configured one; null (with a line saying why) when there is nothing to back up.
 */
async function earlierGeneration(settings: Settings): Promise<Settings | null> {
  const inspected = await docker(
    [
      "container",
      "inspect",
      "--format",
      '{{.State.Running}} {{range .Mounts}}{{if eq .Destination "/var/lib/postgresql/data"}}{{.Name}}{{end}}{{end}}',
      settings.names.postgresContainer,
    ],
    { allowFailure: true },
  );
  const [running, volume] = inspected.stdout.trim().split(" ");
  if (inspected.code !== 0 || !volume) {
    await refuseUnreadableGeneration(settings);
    say("no database of an earlier data generation: nothing to back up");
    return null;
  }
  if (volume === settings.names.postgresVolume) {
    say(`the running database is already on ${volume}: nothing to back up`);
    return null;
  }
  const generation = Number(/_g(\d+)$/.exec(volume)?.[1] ?? 0);
  const names = resourceNames(settings.namePrefix, generation);
  if (names.postgresVolume !== volume) {
    throw failure(
      `The postgres container ${settings.names.postgresContainer} uses volume ${volume}, which is not one of stack ${settings.stack}'s data volumes. Nothing was changed;`,
      `check the container (\`docker inspect ${settings.names.postgresContainer}\`) and the stack's \`edms:dataGeneration\`.`,
    );
  }
  if (running !== "true") {
    // Stopped, its volume would be replaced with nothing taken of it: started for the backup.
    say(`starting ${settings.names.postgresContainer} (on ${volume}) for the backup`);
    await startPostgres(settings);
  }
  say(
    `backing up data generation ${generation} (${names.postgresVolume}, ${names.mediaVolume}) before the fresh start`,
  );
  return { ...settings, dataGeneration: generation, names };
}

/**
 * No postgres container to dump the earlier generation with, while one of its volumes is there: the fresh
 * start would replace it with nothing taken of it. Refused; the operator decides.
 */
async function refuseUnreadableGeneration(settings: Settings): Promise<void> {
  for (let generation = settings.dataGeneration - 1; generation >= 0; generation -= 1) {
    const volume = resourceNames(settings.namePrefix, generation).postgresVolume;
    if (await volumeExists(volume)) {
      throw failure(
        `Stack ${settings.stack}'s postgres container is missing, so data generation ${generation} (volume ${volume}) cannot be backed up before the fresh start. Nothing was changed.`,
        `Set \`edms:dataGeneration\` back to ${generation} and deploy, then bump it again; or remove the volume yourself if its data may go (\`docker volume rm ${volume}\`).`,
      );
    }
  }
}

interface BackupFlags {
  readonly reason: string;
  readonly targetVersion?: string;
  readonly json?: boolean;
  readonly printId?: boolean;
  readonly earlierGeneration?: boolean;
}

function printResult(result: BackupResult | null, opts: BackupFlags): void {
  if (opts.printId) {
    // The last stdout line is all a hook's dependents read: the id, or nothing (createBackup has said why
    // on stderr).
    say(result ? result.entry.id : "");
  } else if (opts.json) {
    say(JSON.stringify(result ?? { nothingToBackUp: true }, null, 2));
  } else {
    say(result ? result.entry.id : "nothing to back up: the database has no schema yet");
  }
}

export function register(program: Command): void {
  program
    .command("backup")
    .description(
      "Back up the database (pg_dump) and media as one restic snapshot in the stack's repository (media incremental), apply the retention policy, then copy off the host after releasing the stack lock (in the background for `--reason pre-deploy`)",
    )
    .option("--reason <reason>", "why it was taken; part of the id (lowercase, dashes)", "manual")
    .option(
      "--target-version <version>",
      "release about to be deployed (set by the pre-deploy hook)",
    )
    .option(
      "--earlier-generation",
      "back up the data of the running postgres container when it is of an earlier `edms:dataGeneration` (the undo of a fresh start; run by `pulumi up`)",
    )
    .option("--json", "print the manifest as JSON")
    .addOption(
      new Option(
        "--print-id",
        "print only the new backup's id on stdout, an empty line when there was nothing to back up (the pre-deploy hook's output, handed to the drill and the deployment record)",
      ).conflicts("json"),
    )
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops backup --stack production --reason before-upgrade\n  edms-ops backup --stack staging --json",
    )
    .action(async (opts: BackupFlags, command: Command) => {
      const current = await openStack(command);
      const settings = opts.earlierGeneration ? await earlierGeneration(current) : current;
      const result = settings
        ? await createBackup(settings, {
            reason: opts.reason,
            targetVersion: opts.targetVersion,
            // A deploy waits for the local backup only; the copy goes on after the hook has ended.
            offsiteCopy:
              opts.reason === REASONS.preDeploy || opts.earlierGeneration ? "background" : "wait",
          })
        : null;
      if (settings || opts.printId) {
        printResult(result, opts);
      }
    });
}
