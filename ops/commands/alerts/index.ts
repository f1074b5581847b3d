/** `edms-ops alerts <subcommand>`: one file per subcommand. */
import { Command } from "commander";
import * as test from "./test";

export function register(program: Command): void {
  const alerts = program
    .command("alerts")
    .description(
      "Alerts the scheduler sends from the Docker host (`edms:alerts`): test the targets",
    );
  for (const sub of [test]) {
    sub.register(alerts);
  }
}
