/**
 * Finds a stack's settings without the Pulumi CLI: from `Pulumi.<stack>.yaml`, validated by the very
 * function `pulumi up` uses. Deploy hooks pass the program's resolved settings instead (EDMS_SETTINGS_JSON),
 * so a hook acts on exactly what is being deployed.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ConfigError, Settings, validateSettings } from "../../components/config";
import { OpsError } from "./errors";

export interface StackOptions {
  readonly stack?: string;
  readonly projectDir?: string;
}

export function projectDirOf(options: StackOptions): string {
  return path.resolve(options.projectDir ?? process.env.EDMS_PROJECT_DIR ?? process.cwd());
}

export function knownStacks(projectDir: string): string[] {
  return fs
    .readdirSync(projectDir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

export function loadSettings(options: StackOptions): Settings {
  const stack = options.stack ?? process.env.EDMS_STACK;
  if (!stack) {
    throw new OpsError(
      "No stack given. Pass `--stack <name>` (e.g. --stack staging) or set EDMS_STACK.",
      2,
    );
  }
  if (process.env.EDMS_SETTINGS_JSON && process.env.EDMS_STACK === stack) {
    return JSON.parse(process.env.EDMS_SETTINGS_JSON) as Settings;
  }
  const projectDir = projectDirOf(options);
  const file = path.join(projectDir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) {
    const stacks = fs.existsSync(projectDir) ? knownStacks(projectDir) : [];
    throw new OpsError(
      `Unknown stack \`${stack}\`: there is no ${file}. ` +
        (stacks.length
          ? `Known stacks: ${stacks.join(", ")}.`
          : "Run edms-ops from the project directory or pass --project-dir."),
      2,
    );
  }
  let doc: { config?: Record<string, unknown> };
  try {
    doc = (YAML.parse(fs.readFileSync(file, "utf8")) ?? {}) as typeof doc;
  } catch (err) {
    throw new OpsError(
      `${file} is not valid YAML: ${(err as Error).message.split("\n")[0]}. Fix the file and retry.`,
      2,
    );
  }
  const raw: Record<string, unknown> = {};
  let dockerHost: string | undefined;
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    if (key.startsWith("edms:")) {
      raw[key.slice("edms:".length)] = value;
    } else if (key === "docker:host") {
      dockerHost = String(value);
    }
  }
  try {
    return validateSettings(stack, raw, dockerHost);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new OpsError(`${err.message}\n(in ${file}; nothing was changed)`, 2);
    }
    throw err;
  }
}

/**
 * Points the docker CLI at the stack's host. A `DOCKER_HOST` that names a different host than the stack
 * file is refused: acting on the wrong host is how production data gets lost.
 */
export function targetDockerHost(settings: Settings): void {
  const fromEnv = process.env.DOCKER_HOST;
  if (settings.dockerHost) {
    if (fromEnv && fromEnv !== settings.dockerHost) {
      throw new OpsError(
        `DOCKER_HOST=${fromEnv} but stack \`${settings.stack}\` deploys to \`docker:host\` ${settings.dockerHost}. Unset DOCKER_HOST or fix the stack file.`,
        2,
      );
    }
    process.env.DOCKER_HOST = settings.dockerHost;
  }
}
