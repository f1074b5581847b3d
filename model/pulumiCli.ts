/**
 * Which Pulumi CLI this project runs, and how every `pulumi up`/`preview` it runs is called. One source for
 * `npm run up|preview|destroy` (scripts/pulumi-local.js, which loads this source through ts-node before it builds)
 * and `edms-ops rollback`, so both run the CLI version pinned in package-lock.json and both pass the policy
 * pack. Pure apart from the file checks it is given; no @pulumi import (edms-ops loads it).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** A path to a Pulumi CLI that wins over everything else: the e2e tests point it at their stand-in. */
export const PULUMI_OVERRIDE_ENV = "EDMS_PULUMI";

/** The official install page, named wherever the CLI cannot be found or downloaded. */
export const PULUMI_INSTALL_URL = "https://www.pulumi.com/docs/install/";

/**
 * The policy pack every `pulumi up` and `preview` of this project passes, relative to the project directory:
 * a production deploy or rollback run by hand must meet the same rules as one run by a workflow.
 */
export const POLICY_PACK_DIR = "policy";

export type PulumiCliSource = "override" | "package" | "path";

export interface PulumiCli {
  /** What to spawn. */
  readonly command: string;
  readonly source: PulumiCliSource;
  /** The `pulumi` npm package's version (= the CLI version it installs), when `source` is `package`. */
  readonly version?: string;
  /** Where the package keeps that CLI once downloaded (`$PULUMI_HOME/versions/<v>/bin/pulumi`). */
  readonly cachedBinary?: string;
}

export interface CliFiles {
  readonly isFile: (file: string) => boolean;
  readonly readText: (file: string) => string | undefined;
}

const realFiles: CliFiles = {
  isFile: (file) => fs.existsSync(file) && fs.statSync(file).isFile(),
  readText: (file) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined),
};

/**
 * The CLI to run from the package installed in `root`: `$EDMS_PULUMI` when set; else the `pulumi` npm package's
 * bin (`node_modules/.bin/pulumi`, a devDependency pinned exactly, which downloads that CLI version on first
 * use); else whatever `pulumi` is on PATH.
 */
export function findPulumiCli(
  root: string,
  env: NodeJS.ProcessEnv = process.env,
  files: CliFiles = realFiles,
): PulumiCli {
  const override = env[PULUMI_OVERRIDE_ENV];
  if (override) {
    return { command: override, source: "override" };
  }
  const bin = path.join(
    root,
    "node_modules",
    ".bin",
    process.platform === "win32" ? "pulumi.cmd" : "pulumi",
  );
  const version = packageVersion(path.join(root, "node_modules", "pulumi", "package.json"), files);
  if (files.isFile(bin) && version) {
    return {
      command: bin,
      source: "package",
      version,
      cachedBinary: cachedPulumiBinary(version, env),
    };
  }
  return { command: "pulumi", source: "path" };
}

function packageVersion(file: string, files: CliFiles): string | undefined {
  const text = files.readText(file);
  if (text === undefined) {
    return undefined;
  }
  try {
    const pkg: unknown = JSON.parse(text);
    const version = (pkg as { version?: unknown }).version;
    return typeof version === "string" ? version : undefined;
  } catch {
    return undefined;
  }
}

/** The package's cache: `$PULUMI_HOME` (default `~/.pulumi`) `/versions/<v>/bin/pulumi`, as its lib/cache.js. */
export function cachedPulumiBinary(version: string, env: NodeJS.ProcessEnv = process.env): string {
  const home = env.PULUMI_HOME || path.join(os.homedir(), ".pulumi");
  return path.join(
    home,
    "versions",
    version,
    "bin",
    process.platform === "win32" ? "pulumi.exe" : "pulumi",
  );
}

/**
 * The environment to run the CLI in. `PULUMI_VERSION` is dropped because the package's run.js prefers it to its
 * own version, which would silently install another CLI than the pinned one.
 */
export function pulumiEnv(cli: PulumiCli, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (cli.source !== "package" || env.PULUMI_VERSION === undefined) {
    return env;
  }
  const rest = { ...env };
  delete rest.PULUMI_VERSION;
  return rest;
}

/** `--policy-pack policy` for the commands that evaluate policies (`up`, `preview`), nothing for the others. */
export function policyPackArgs(verb: string): string[] {
  return verb === "up" || verb === "update" || verb === "preview"
    ? ["--policy-pack", POLICY_PACK_DIR]
    : [];
}

/** What was tried, for a message saying the CLI could not be run. */
export function describeTried(cli: PulumiCli): string {
  switch (cli.source) {
    case "override":
      return `\`${cli.command}\` (from $${PULUMI_OVERRIDE_ENV})`;
    case "package":
      return (
        `the \`pulumi\` npm package ${cli.version} (${cli.command}), which downloads Pulumi CLI ` +
        `v${cli.version} on first use into ${path.dirname(path.dirname(cli.cachedBinary ?? ""))}`
      );
    case "path":
      return "`pulumi` on PATH (the `pulumi` npm package is not installed here: `npm ci` installs it)";
    default: {
      const unreachable: never = cli.source;
      return unreachable;
    }
  }
}

/** How to install the CLI by hand so that the package, or PATH, finds it. */
export function installByHand(cli: PulumiCli): string[] {
  const lines = [`To install the Pulumi CLI by hand, follow ${PULUMI_INSTALL_URL}:`];
  if (cli.source === "package" && cli.version && cli.cachedBinary) {
    const installRoot = path.dirname(path.dirname(cli.cachedBinary));
    lines.push(
      `  - where the package looks first: run that page's install script with ` +
        `\`--version ${cli.version} --install-root ${installRoot} --no-edit-path\` ` +
        "(PULUMI_HOME, default ~/.pulumi, moves this cache);",
    );
  }
  lines.push(
    cli.source === "package"
      ? `  - or any other way, then set ${PULUMI_OVERRIDE_ENV}="$(command -v pulumi)" to use that one.`
      : `  - with its directory on PATH, or set ${PULUMI_OVERRIDE_ENV}=<path to the pulumi binary>.`,
  );
  return lines;
}

/**
 * The message for "no Pulumi CLI could be run": what was tried, why it failed (a download the package could not
 * make, or a CLI that did not answer `pulumi version`), and how to install one by hand. `failure` is the
 * probe's error or exit status; the package's own error (`pulumi: fetch failed`) went to stderr before.
 */
export function cliUnavailable(
  cli: PulumiCli,
  failure: string,
  files: CliFiles = realFiles,
): string[] {
  const notDownloaded =
    cli.source === "package" && cli.cachedBinary !== undefined && !files.isFile(cli.cachedBinary);
  return [
    notDownloaded
      ? `The Pulumi CLI v${cli.version} could not be downloaded (${failure}; its error is above). ` +
        "The first run needs internet access."
      : `The Pulumi CLI could not be run (${failure}).`,
    `Tried ${describeTried(cli)}.`,
    ...installByHand(cli),
  ];
}

/**
 * Why a stack's state may not be written with this environment, or undefined. The local file backend
 * encrypts secrets with PULUMI_CONFIG_PASSPHRASE: an empty one is a convenience for dev only, elsewhere it
 * leaves every secret of the stack (database, Django key, backup password) readable by anyone with the file.
 */
export function passphraseProblem(
  environment: unknown,
  env: NodeJS.ProcessEnv,
): string | undefined {
  if (environment === "dev" || env.PULUMI_CONFIG_PASSPHRASE_FILE) {
    return undefined;
  }
  if (env.PULUMI_CONFIG_PASSPHRASE) {
    return undefined;
  }
  return (
    `edms: the ${String(environment)} stack's secrets would be encrypted with an empty passphrase. Nothing was changed.\n` +
    "Set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) to the stack's passphrase, or use a Pulumi Cloud backend (PULUMI_BACKEND_URL)."
  );
}

/** The stack a wrapper's arguments name and the arguments left to pass on, or why they cannot be read. */
export type StackChoice =
  { readonly stack: string; readonly passThrough: string[] } | { readonly problem: string };

/**
 * Reads the stack out of `npm run up|preview|destroy -- …` as the Pulumi CLI (cobra) would: `--stack S`,
 * `--stack=S`, `-s S`, `-s=S`, `-sS`. More than one is refused (the CLI takes the last, so a check of the
 * first could be walked around), and so is `-s` inside a cluster of short flags (`-ys prod`), which only the
 * CLI's own flag table could read; none is `dev`. Everything else is passed on unchanged.
 */
export function stackChoice(args: readonly string[]): StackChoice {
  const named: string[] = [];
  const passThrough: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === "--") {
      passThrough.push(...args.slice(i));
      break;
    }
    if (arg === "--stack" || arg === "-s") {
      if (i + 1 >= args.length) {
        return { problem: `edms: ${arg} needs a stack name, e.g. \`--stack staging\`.` };
      }
      i += 1;
      named.push(args[i]);
    } else if (arg.startsWith("--stack=")) {
      named.push(arg.slice("--stack=".length));
    } else if (arg.startsWith("-s")) {
      named.push(arg.slice(arg[2] === "=" ? 3 : 2));
    } else if (/^-[^-]/.test(arg) && arg.includes("s")) {
      return {
        problem: `edms: cannot tell whether \`${arg}\` names a stack. Write the stack as \`--stack <name>\`, apart from other flags. Nothing was changed.`,
      };
    } else {
      passThrough.push(arg);
    }
  }
  if (named.length > 1) {
    return {
      problem: `edms: more than one stack given (${named.join(", ")}). Pass one \`--stack <name>\`. Nothing was changed.`,
    };
  }
  return { stack: named[0] ?? "dev", passThrough };
}

/** A structured config value as the stack file holds it (an object, or JSON text); undefined otherwise. */
function objectValue(value: unknown): Record<string, unknown> | undefined {
  let parsed = value;
  if (typeof parsed === "string") {
    try {
      parsed = JSON.parse(parsed);
    } catch {
      return undefined;
    }
  }
  return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
}

/**
 * What `npm run destroy` says of data it leaves alone: an external database (`edms:database`) and a media
 * bucket (`edms:media`) are no resources of the program, so nothing of them is removed. From the stack file's
 * raw config; undefined when there is neither.
 */
export function destroyNotice(stack: string, raw: Record<string, unknown>): string | undefined {
  const notices: string[] = [];
  const database = objectValue(raw.database);
  if (database) {
    const { host, port } = database;
    const where =
      typeof host === "string"
        ? ` on ${host}:${typeof port === "number" || typeof port === "string" ? port : 5432}`
        : "";
    notices.push(
      `edms: stack ${stack}'s database is external (edms:database, database edms${where}): destroy leaves it, its data and its roles as they are. Drop them on the server yourself if they should go.`,
    );
  }
  const media = objectValue(raw.media);
  if (media) {
    const { bucket, prefix } = media;
    const where =
      typeof bucket === "string"
        ? ` ${bucket}/${typeof prefix === "string" ? prefix : "<namePrefix>"}`
        : "";
    notices.push(
      `edms: stack ${stack}'s media are in a bucket (edms:media,${where}): destroy leaves every object there as it is. Delete the prefix yourself if it should go.`,
    );
  }
  return notices.length ? notices.join("\n") : undefined;
}
