/**
 * The deploy hooks (command.local.Command resources) by name, and the CLI entry point they run. The program
 * creates them, the policy pack and the tests look them up. No @pulumi import.
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
} as const;

/** Matches a hook's command line that drills the pre-deploy backup. */
export const PRE_DEPLOY_DRILL_COMMAND = /edms-ops\.js drill\b/;

/** Matches a hook's command line that takes the pre-deploy backup. */
export const PRE_DEPLOY_BACKUP_COMMAND = /edms-ops\.js backup --reason pre-deploy\b/;
