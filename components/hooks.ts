import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { backupIdFromHookOutput, HookContract, OPS_ENTRY } from "../model/hooks";
import { Settings } from "../model/settings";
import { shellWord } from "../model/shell";

/** The repository root: hooks run `node ops/bin/edms-ops.js` from here. */
export const PROJECT_DIR = path.resolve(__dirname, "..");

/** Variables that carry secrets into edms-ops; never argv, never logged. */
export interface HookSecrets {
  readonly EDMS_POSTGRES_PASSWORD?: pulumi.Input<string>;
  readonly EDMS_DJANGO_SECRET_KEY?: pulumi.Input<string>;
  /** For edms-ops' one-off Django containers, whose settings read REDIS_PASSWORD_FILE. */
  readonly EDMS_REDIS_PASSWORD?: pulumi.Input<string>;
  readonly EDMS_SUPERUSER_PASSWORD?: pulumi.Input<string>;
  /** The application role's password, for `migrate` to give the role its login (sent as a SCRAM verifier). */
  readonly EDMS_APP_DB_PASSWORD?: pulumi.Input<string>;
  readonly EDMS_BACKUP_DB_PASSWORD?: pulumi.Input<string>;
  /** The restic repositories' password; edms-ops keeps a root-only copy in the backups volume. */
  readonly EDMS_RESTIC_PASSWORD?: pulumi.Input<string>;
  /** Off-host repository URL and backend variables (JSON), when `edms:backup.offsite` is set. */
  readonly EDMS_OFFSITE_REPOSITORY?: pulumi.Input<string>;
  readonly EDMS_OFFSITE_ENV?: pulumi.Input<string>;
  /** `edms:database`'s password and its server's CA: `backups init` writes edms-ops' credentials volume. */
  readonly EDMS_DATABASE_PASSWORD?: pulumi.Input<string>;
  readonly EDMS_DATABASE_CA?: pulumi.Input<string>;
  /** `edms:media.secretAccessKey`: `backups init` writes edms-ops' rclone config for the bucket. */
  readonly EDMS_MEDIA_SECRET_KEY?: pulumi.Input<string>;
  readonly EDMS_MEDIA_CA?: pulumi.Input<string>;
}

/** A contract's input as the program has it: any field may be another resource's output. */
export type HookInputs<Input> = { readonly [K in keyof Input]: pulumi.Input<Input[K]> };

interface OpsHookBase {
  readonly settings: Settings;
  /** The hook runs again whenever one of these changes. */
  readonly triggers: pulumi.Input<unknown>[];
  readonly secrets?: HookSecrets;
}

/** The contract's typed input, required unless the contract needs none. */
export type OpsHookArgs<Input> = OpsHookBase &
  (NoInputNeeded<Input> extends true
    ? { readonly input?: HookInputs<Input> }
    : { readonly input: HookInputs<Input> });

type NoInputNeeded<Input> = Record<string, never> extends Input ? true : false;

/**
 * A deploy hook: its contract's edms-ops command line, with `--stack <stack>`, as a `command.local.Command`
 * of the contract's name. edms-ops gets the
 * resolved settings as JSON so it acts on exactly what this `pulumi up` deploys, even when config was
 * given on the command line.
 */
export function opsHook<Input>(
  contract: HookContract<Input>,
  args: OpsHookArgs<Input>,
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
  // An input carrying another hook's output (the backup id) makes the command line wait for that hook,
  // and gives this hook an input edge to it, as the engine orders by.
  const create = pulumi
    .output(args.input ?? {})
    .apply((input) =>
      ["node", OPS_ENTRY, ...contract.argv(input as Input), "--stack", settings.stack]
        .map(shellWord)
        .join(" "),
    );
  return new command.local.Command(
    contract.name,
    {
      create,
      // Without `update`, the provider re-runs `create` on any input change (e.g. the settings JSON of a
      // new version). A hook must run only when its triggers change, which replaces it: e.g. bootstrap
      // only for a new postgres volume.
      update: "true",
      dir: PROJECT_DIR,
      environment,
      triggers: args.triggers,
      // Output of hooks that hold secrets stays out of Pulumi's logs while they succeed. A failed command's
      // error carries all of its output whatever this says (@pulumi/command's `running %q:\n<output>`), so
      // edms-ops replaces every secret it was handed in what it prints (ops/core/log.ts scrub).
      logging: hasSecrets
        ? command.types.enums.local.Logging.None
        : command.types.enums.local.Logging.StdoutAndStderr,
    },
    // And in the state: what such a hook printed is stored encrypted, like the secrets it was handed.
    hasSecrets ? { ...opts, additionalSecretOutputs: ["stdout", "stderr"] } : opts,
  );
}

/**
 * The id of the backup the pre-deploy backup hook took, from its `stdout` output (kept in the state, so a
 * hook that runs again later without the backup hook running again is handed the same id).
 */
export function handedBackupId(preDeployBackup: command.local.Command): pulumi.Output<string> {
  return preDeployBackup.stdout.apply(backupIdFromHookOutput);
}
