/** `edms-ops backups <subcommand>`: one file per subcommand, registered here in the order help lists them. */
import { Command } from "commander";
import * as exportCommand from "./export";
import * as forget from "./forget";
import * as importCommand from "./import";
import * as importLegacy from "./import-legacy";
import * as init from "./init";
import * as list from "./list";
import * as prune from "./prune";
import * as unlock from "./unlock";

export function register(program: Command): void {
  const backups = program
    .command("backups")
    .description(
      "List backups, copy them off the host and bring them back, import first-release backups, forget one",
    );

  for (const sub of [
    list,
    init,
    exportCommand,
    importCommand,
    importLegacy,
    prune,
    unlock,
    forget,
  ]) {
    sub.register(backups);
  }
}
