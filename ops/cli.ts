/**
 * edms-ops: the operator CLI. Deploy hooks call it (backup, migrate, bootstrap, health, record-deployment);
 * operators use the rest. It needs only the docker CLI and the stack file, not the Pulumi CLI.
 */
import { Command, CommanderError } from "commander";
import * as alerts from "./commands/alerts";
import * as backup from "./commands/backup";
import * as backups from "./commands/backups";
import * as bootstrap from "./commands/bootstrap";
import * as drill from "./commands/drill";
import * as evidence from "./commands/evidence";
import * as health from "./commands/health";
import * as migrate from "./commands/migrate";
import * as recordDeployment from "./commands/record-deployment";
import * as reset from "./commands/reset";
import * as resetApp from "./commands/reset-app";
import * as restore from "./commands/restore";
import * as scheduler from "./commands/scheduler";
import * as rollback from "./commands/rollback";
import * as status from "./commands/status";
import * as switchCommand from "./commands/switch";
import * as verify from "./commands/verify";
import { EXIT, OpsError } from "./core/errors";
import { scrub } from "./core/log";

export function buildProgram(): Command {
  const program = new Command("edms-ops")
    .description(
      "Operate an EDMS stack: backups, restore, migrations, health, status, resets, rollback.",
    )
    .option("--stack <name>", "stack to act on (Pulumi.<name>.yaml); default $EDMS_STACK")
    .option(
      "--project-dir <dir>",
      "directory holding the Pulumi.<stack>.yaml files; default $EDMS_PROJECT_DIR or .",
    )
    .showHelpAfterError()
    // Commander's own messages (an unknown option echoes what was typed) go out scrubbed too.
    .configureOutput({
      writeOut: (text) => process.stdout.write(scrub(text)),
      writeErr: (text) => process.stderr.write(scrub(text)),
    })
    .exitOverride();
  for (const command of [
    backup,
    backups,
    verify,
    drill,
    restore,
    migrate,
    bootstrap,
    health,
    status,
    evidence,
    recordDeployment,
    reset,
    resetApp,
    rollback,
    scheduler,
    alerts,
    switchCommand,
  ]) {
    command.register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  // Until the command has really finished, an exit (e.g. an event loop that ran dry while a promise was
  // still pending) must not look like success to a deploy hook.
  let finished = false;
  process.exitCode = EXIT.internal;
  process.on("exit", (code) => {
    if (!finished && code === EXIT.internal) {
      process.stderr.write("edms-ops: internal error: the command stopped before it finished\n");
    }
  });
  try {
    await program.parseAsync(argv);
    process.exitCode = EXIT.done;
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? EXIT.done : EXIT.refused;
      return;
    }
    if (err instanceof OpsError) {
      process.stderr.write(scrub(`edms-ops: ${err.describe()}\n`));
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(
      scrub(`edms-ops: unexpected error: ${(err as Error).stack ?? String(err)}\n`),
    );
    process.exitCode = EXIT.failed;
  } finally {
    finished = true;
  }
}
