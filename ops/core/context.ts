import { Command } from "commander";
import { Settings } from "../../model/settings";
import { requireEngine } from "../engine/docker";
import { refuse } from "./errors";
import { loadSettings, targetDockerHost } from "./stack";

/** Global options live on the root command; any subcommand can read them. */
export function globalOptions(command: Command): { stack?: string; projectDir?: string } {
  let root = command;
  while (root.parent) {
    root = root.parent;
  }
  return root.opts();
}

/**
 * Settings of the chosen stack from its file alone, no engine call: refusals that depend only on the stack
 * (production) are made on these, so they hold when the host is unreachable or DOCKER_HOST points elsewhere.
 */
export function stackOf(command: Command): Settings {
  return loadSettings(globalOptions(command));
}

/** Points the docker CLI at the stack's host and checks that the engine answers. */
export async function connect(settings: Settings): Promise<Settings> {
  targetDockerHost(settings);
  await requireEngine();
  return settings;
}

/** Settings of the chosen stack, with the docker CLI pointed at its host and the engine reachable. */
export async function openStack(command: Command): Promise<Settings> {
  return connect(stackOf(command));
}

/** Refuses a destructive command unless `--confirm` repeats the stack name. */
export function requireConfirm(settings: Settings, given: string | undefined, what: string): void {
  if (given === undefined) {
    throw refuse(
      `${what} on stack \`${settings.stack}\` needs \`--confirm ${settings.stack}\`. Nothing was changed.`,
      `Run it again with \`--confirm ${settings.stack}\`.`,
    );
  }
  if (given !== settings.stack) {
    throw refuse(
      `--confirm \`${given}\` does not match the stack \`${settings.stack}\`. Nothing was changed.`,
      `Check you meant stack ${settings.stack}; then pass \`--confirm ${settings.stack}\`.`,
    );
  }
}

/** `--wait <seconds>` as given on the command line. */
export function waitSeconds(raw: string): number {
  const wait = Number(raw);
  if (!Number.isFinite(wait) || wait < 0) {
    throw refuse(`--wait takes seconds ≥ 0 (got \`${raw}\`).`, "Pass e.g. --wait 120.");
  }
  return wait;
}
