/**
 * The Pulumi CLI, run by edms-ops itself (rollback redeploys a release): found the way `npm run up` finds it
 * (model/pulumiCli.ts), with the project's local backend when it uses one, and the policy pack on every `up`.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  cliUnavailable,
  findPulumiCli,
  policyPackArgs,
  PulumiCli,
  pulumiEnv,
} from "../../model/pulumiCli";
import { Settings } from "../../model/settings";
import { failure, OpsError } from "../core/errors";
import { progress, say } from "../core/log";
import { rollbackAgain } from "../store/markers";

/**
 * The CLI `npm run up` uses (model/pulumiCli.ts), found from where edms-ops is installed: the pinned `pulumi`
 * package's bin first, downloading its CLI on the first `version`, whose progress and errors go to stderr.
 */
function readyPulumiCli(): { cli: PulumiCli; problem?: string[] } {
  const cli = findPulumiCli(packageRoot());
  const probe = spawnSync(cli.command, ["version"], {
    env: pulumiEnv(cli, process.env),
    stdio: ["ignore", "ignore", 2],
  });
  if (!probe.error && probe.status === 0) {
    return { cli };
  }
  return { cli, problem: cliUnavailable(cli, probe.error?.message ?? `exit ${probe.status}`) };
}

/** The directory of edms-deploy's package.json: two levels up from the sources, three from build/. */
function packageRoot(): string {
  const candidates = [path.resolve(__dirname, "../.."), path.resolve(__dirname, "../../..")];
  return candidates.find((dir) => fs.existsSync(path.join(dir, "package.json"))) ?? candidates[0];
}

/** The release rollback configures: a version and the digest its deployment recorded, if any. */
export interface RedeployTarget {
  readonly version: string;
  /** `sha256:…` from the target's deployment record; undefined when it recorded none. */
  readonly digest?: string;
}

/**
 * The `pulumi config` commands that make `target` the configured release. The digest goes with the version:
 * the target's recorded one, or none at all, never the newer release's digest left on the older version
 * (whose pull would then be refused, or run the wrong content).
 */
export function releaseConfig(
  settings: Pick<Settings, "stack" | "releaseDigest">,
  target: RedeployTarget,
): string[][] {
  const stack = settings.stack;
  const digest = target.digest
    ? [["config", "set", "edms:releaseDigest", target.digest, "--stack", stack]]
    : settings.releaseDigest
      ? [["config", "rm", "edms:releaseDigest", "--stack", stack]]
      : [];
  return [["config", "set", "edms:version", target.version, "--stack", stack], ...digest];
}

/**
 * `pulumi config set edms:version <version>` (and the release's digest, `releaseConfig`) and `pulumi up` of
 * the stack, with the same local backend as `npm run up` when the project uses it. Without the Pulumi CLI,
 * prints what is left to run and returns false.
 */
export async function redeploy(
  settings: Settings,
  target: RedeployTarget,
  projectDir: string,
  thenAgain: boolean,
): Promise<boolean> {
  const stack = settings.stack;
  const { version } = target;
  const config = releaseConfig(settings, target);
  const commands = [...config, ["up", "--stack", stack, "--yes", ...policyPackArgs("up")]];
  const { cli, problem } = readyPulumiCli();
  if (problem) {
    problem.forEach((line) => say(line));
    say("To go on without it here, run where a Pulumi CLI and the stack's state are:");
    commands.forEach((c) => say(`  pulumi ${c.join(" ")}`));
    if (thenAgain) {
      say(`  ${rollbackAgain(settings)}   (again: it reverses the migrations)`);
    }
    return false;
  }
  const env = pulumiEnv(cli, { ...process.env });
  const localState = path.join(projectDir, ".pulumi-local");
  if (!env.PULUMI_BACKEND_URL && fs.existsSync(localState)) {
    env.PULUMI_BACKEND_URL = `file://${localState}`;
    env.PULUMI_CONFIG_PASSPHRASE = env.PULUMI_CONFIG_PASSPHRASE ?? "";
  }
  for (const args of commands) {
    progress(`pulumi ${args.join(" ")}`);
    const code = await new Promise<number>((resolve) => {
      const child = spawn(cli.command, args, { cwd: projectDir, env, stdio: ["ignore", 2, 2] });
      child.on("error", () => resolve(127));
      child.on("close", (status) => resolve(status ?? 1));
    });
    if (code !== 0) {
      throw redeployFailed(settings, version, `pulumi ${args.join(" ")}`, code, thenAgain, config);
    }
  }
  return true;
}

/**
 * A `pulumi` command of the redeploy failed. After the data steps the fix names the version as well as `up`,
 * even when only `up` failed: a `pulumi up` of the release still configured restarts the newer release's
 * stopped web/worker in place (the docker provider starts a stopped container it manages; behind the proxy
 * nothing else runs, no migrate, no health gate) on data that release does not expect.
 */
export function redeployFailed(
  settings: Pick<Settings, "stack" | "environment">,
  version: string,
  command: string,
  code: number,
  thenAgain: boolean,
  config: readonly string[][] = [
    ["config", "set", "edms:version", version, "--stack", settings.stack],
  ],
): OpsError {
  const stack = settings.stack;
  const configure = config.map((c) => `\`pulumi ${c.join(" ")}\``).join(", ");
  return failure(
    `\`${command}\` failed (exit ${code}); see its output above. ` +
      (thenAgain
        ? "No data was changed and the release that served before still serves."
        : "The data steps are done and web/worker are stopped:"),
    thenAgain
      ? `Fix the cause, then run \`${rollbackAgain(settings)}\` again.`
      : `fix the cause, then run ${configure} and \`pulumi up --stack ${stack}\`.`,
  );
}
