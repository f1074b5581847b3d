import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { HookName, OPS_ENTRY } from "../model/hooks";
import { Settings } from "../model/settings";
import { shellWord } from "../model/shell";

/** The repository root: hooks run `node ops/bin/edms-ops.js` from here. */
export const PROJECT_DIR = path.resolve(__dirname, "..");

/** Variables that carry secrets into edms-ops; never argv, never logged. */
export interface HookSecrets {
  readonly EDMS_POSTGRES_PASSWORD?: pulumi.Input<string>;
  readonly EDMS_DJANGO_SECRET_KEY?: pulumi.Input<string>;
  readonly EDMS_SUPERUSER_PASSWORD?: pulumi.Input<string>;
  /** The restic repositories' password; edms-ops keeps a root-only copy in the backups volume. */
  readonly EDMS_RESTIC_PASSWORD?: pulumi.Input<string>;
  /** Off-host repository URL and backend variables (JSON), when `edms:backup.offsite` is set. */
  readonly EDMS_OFFSITE_REPOSITORY?: pulumi.Input<string>;
  readonly EDMS_OFFSITE_ENV?: pulumi.Input<string>;
}

export interface OpsHookArgs {
  readonly settings: Settings;
  /** edms-ops arguments after the command name; fixed words only (no secrets, no user input). */
  readonly args: readonly string[];
  /** The hook runs again whenever one of these changes. */
  readonly triggers: pulumi.Input<unknown>[];
  readonly secrets?: HookSecrets;
}

/**
 * A deploy hook: `edms-ops <args> --stack <stack>` as a `command.local.Command`. edms-ops gets the
 * resolved settings as JSON so it acts on exactly what this `pulumi up` deploys, even when config was
 * given on the command line.
 */
export function opsHook(
  name: HookName,
  args: OpsHookArgs,
  opts: pulumi.CustomResourceOptions,
): command.local.Command {
  const { settings } = args;
  const hasSecrets = args.secrets !== undefined && Object.keys(args.secrets).length > 0;
  const environment: Record<string, pulumi.Input<string>> = {
    EDMS_STACK: settings.stack,
    EDMS_SETTINGS_JSON: JSON.stringify(settings),
    ...(settings.dockerHost ? { DOCKER_HOST: settings.dockerHost } : {}),
    ...(args.secrets as Record<string, pulumi.Input<string>> | undefined),
  };
  const argv = ["node", OPS_ENTRY, ...args.args, "--stack", settings.stack];
  return new command.local.Command(
    name,
    {
      create: argv.map(shellWord).join(" "),
      // Without `update`, the provider re-runs `create` on any input change (e.g. the settings JSON of a
      // new version). A hook must run only when its triggers change, which replaces it: e.g. bootstrap
      // only for a new postgres volume.
      update: "true",
      dir: PROJECT_DIR,
      environment,
      triggers: args.triggers,
      // Output of hooks that hold secrets stays out of Pulumi's logs entirely, as a second line of defence
      // behind edms-ops never printing them.
      logging: hasSecrets
        ? command.types.enums.local.Logging.None
        : command.types.enums.local.Logging.StdoutAndStderr,
    },
    opts,
  );
}
