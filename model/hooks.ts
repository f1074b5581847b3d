/**
 * The deploy hooks (command.local.Command resources): one table of each hook's resource name, the edms-ops
 * command it runs with the flags it passes, and a pure argv builder from typed inputs. The program builds
 * every hook's command from it, the policy pack finds hooks by name, and the unit tests hold the table
 * against the CLI's real flags, so a hook exists in one place instead of three. No @pulumi import.
 */
export const HOOKS = {
  freshStartBackup: "freshStartBackup",
  backupInit: "backupInit",
  preDeployBackup: "preDeployBackup",
  preDeployDrill: "preDeployDrill",
  migrate: "migrate",
  bootstrap: "bootstrap",
  proxyTakeover: "proxyTakeover",
  proxySwitch: "proxySwitch",
  healthGate: "healthGate",
  recordDeployment: "recordDeployment",
} as const;

export type HookName = (typeof HOOKS)[keyof typeof HOOKS];

/** Relative to the project directory: what every hook runs with `node`. */
export const OPS_ENTRY = "ops/bin/edms-ops.js";

/**
 * Backup reasons the hooks give. They become part of the backup id and a restic tag, and edms-ops finds
 * "the pre-deploy backup of release X" by them, so every reader and writer uses these constants.
 */
export const REASONS = {
  /** Taken by `pulumi up` before a release touches the data; its target is that release. */
  preDeploy: "pre-deploy",
  /** The earlier data generation, taken before a `dataGeneration` bump starts afresh (its undo). */
  preFreshStart: "pre-fresh-start",
  /** Taken by `restore` of the state it replaces (its undo); retention keeps it until a deploy supersedes it. */
  preRestore: "pre-restore",
  /** Taken by `reset-app` before it empties the app (its undo); kept as a restore's undo is. */
  preResetApp: "pre-reset-app",
  /**
   * Taken by `rollback --backup-first` before it reverses migrations (its undo); kept as a restore's undo is,
   * and the rollback's own records (its redeploy, its record of the reversal) do not supersede it.
   */
  preRollback: "pre-rollback",
} as const;

/** Seconds the switch and health hooks wait for the new release to become healthy. */
export const HOOK_WAIT_SECONDS = 120;

/** A hook without inputs: its argv is the same on every deploy. */
export type NoInput = Record<string, never>;

export interface PreDeployBackupInput {
  /** The release about to be deployed: the backup's target. */
  readonly version: string;
}

export interface HandedBackupInput {
  /** What the pre-deploy backup hook printed (`backupIdFromHookOutput`); "" when it took none. */
  readonly backupId: string;
}

export interface RecordDeploymentInput {
  /** As in HandedBackupInput; absent when the stack runs no pre-deploy backup hook. */
  readonly backupId?: string;
}

export interface HookContract<Input> {
  readonly name: HookName;
  /** The edms-ops command, subcommand included (`backups init`). */
  readonly command: readonly string[];
  /** Every flag the argv may carry, besides the `--stack` every hook gets. */
  readonly flags: readonly string[];
  /** edms-ops arguments (command first) before `--stack`: fixed words and typed inputs, never a secret. */
  readonly argv: (input: Input) => string[];
}

function contract<Input>(
  name: HookName,
  command: readonly string[],
  flags: readonly string[],
  options: (input: Input) => string[],
): HookContract<Input> {
  return { name, command, flags, argv: (input) => [...command, ...options(input)] };
}

/** How long the switch and health hooks wait: `edms:healthWaitSeconds`, else HOOK_WAIT_SECONDS. */
export interface WaitInput {
  readonly wait: number;
}

const waitFlag = ({ wait }: WaitInput) => ["--wait", String(wait)];

export const HOOK_CONTRACTS = {
  freshStartBackup: contract<NoInput>(
    HOOKS.freshStartBackup,
    ["backup"],
    ["--reason", "--earlier-generation"],
    () => ["--reason", REASONS.preFreshStart, "--earlier-generation"],
  ),
  backupInit: contract<NoInput>(HOOKS.backupInit, ["backups", "init"], [], () => []),
  // `--print-id`: the id is this hook's last stdout line, which the drill and the record are handed.
  preDeployBackup: contract<PreDeployBackupInput>(
    HOOKS.preDeployBackup,
    ["backup"],
    ["--reason", "--target-version", "--print-id"],
    ({ version }) => ["--reason", REASONS.preDeploy, "--target-version", version, "--print-id"],
  ),
  preDeployDrill: contract<HandedBackupInput>(
    HOOKS.preDeployDrill,
    ["drill"],
    ["--backup-id", "--reason"],
    ({ backupId }) => ["--backup-id", backupId, "--reason", REASONS.preDeploy],
  ),
  migrate: contract<NoInput>(HOOKS.migrate, ["migrate"], [], () => []),
  bootstrap: contract<NoInput>(HOOKS.bootstrap, ["bootstrap"], [], () => []),
  proxyTakeover: contract<WaitInput>(
    HOOKS.proxyTakeover,
    ["switch"],
    ["--take-over-port", "--wait"],
    (input) => ["--take-over-port", ...waitFlag(input)],
  ),
  proxySwitch: contract<WaitInput>(HOOKS.proxySwitch, ["switch"], ["--wait"], waitFlag),
  healthGate: contract<WaitInput>(HOOKS.healthGate, ["health"], ["--wait"], waitFlag),
  recordDeployment: contract<RecordDeploymentInput>(
    HOOKS.recordDeployment,
    ["record-deployment"],
    ["--backup-id"],
    ({ backupId }) => (backupId === undefined ? [] : ["--backup-id", backupId]),
  ),
} as const satisfies { readonly [K in HookName]: HookContract<never> };

/**
 * The backup id in the pre-deploy backup hook's stdout (as the command provider keeps it, without the
 * trailing newline): its last line, which `backup --print-id` leaves empty when there was nothing to back up.
 */
export function backupIdFromHookOutput(stdout: string): string {
  return (stdout.replace(/\n$/, "").split("\n").pop() ?? "").trim();
}
