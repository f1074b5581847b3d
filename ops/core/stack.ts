/**
 * Finds a stack's settings without the Pulumi CLI: from `Pulumi.<stack>.yaml`, validated by the very
 * function `pulumi up` uses. Deploy hooks pass the program's resolved settings instead (EDMS_SETTINGS_JSON),
 * so a hook acts on exactly what is being deployed.
 */
import * as fs from "fs";
import { z } from "zod";
import * as path from "path";
import { isDeepStrictEqual } from "util";
import {
  ConfigError,
  ENVIRONMENTS,
  resourceNames,
  Settings,
  validateSettings,
} from "../../model/settings";
import {
  edmsConfig,
  knownStacks,
  readStackConfig,
  StackFileError,
  stackFilePath,
} from "../../model/stackFile";
import { refuse } from "./errors";
import { parseJson } from "./json";

/**
 * What a hook is handed is the program's own validated output, so it is not validated again (defaults and
 * redactions are not idempotent); its shape is checked, so a wrong or stale variable fails here, clearly.
 */
const ResolvedSettingsShape = z.looseObject({
  stack: z.string().regex(/^[A-Za-z0-9_.-]+$/, "must be a stack name"),
  environment: z.enum(ENVIRONMENTS),
  version: z.string(),
  namePrefix: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, "must be a name prefix"),
  dataGeneration: z.number().int().min(0).optional(),
  names: z.record(z.string(), z.string()),
  backup: z.looseObject({ keep: z.number(), image: z.string(), schedule: z.string() }),
  proxy: z.looseObject({ enabled: z.boolean() }),
});

export interface StackOptions {
  readonly stack?: string;
  readonly projectDir?: string;
}

export function projectDirOf(options: StackOptions): string {
  return path.resolve(options.projectDir ?? process.env.EDMS_PROJECT_DIR ?? process.cwd());
}

export function loadSettings(options: StackOptions): Settings {
  const stack = options.stack ?? process.env.EDMS_STACK;
  if (!stack) {
    throw refuse(
      "No stack given.",
      "Pass `--stack <name>` (e.g. --stack staging) or set EDMS_STACK.",
    );
  }
  const projectDir = projectDirOf(options);
  if (process.env.EDMS_SETTINGS_JSON && process.env.EDMS_STACK === stack) {
    return handedSettings(process.env.EDMS_SETTINGS_JSON, stack, projectDir);
  }
  let config: Record<string, unknown>;
  try {
    config = readStackConfig(projectDir, stack);
  } catch (err) {
    if (!(err instanceof StackFileError)) {
      throw err;
    }
    if (err.reason === "yaml") {
      throw refuse(`${err.message}; nothing was changed.`, "Fix the file and retry.");
    }
    const stacks = fs.existsSync(projectDir) ? knownStacks(projectDir) : [];
    throw refuse(
      `Unknown stack \`${stack}\`: ${err.message}.`,
      stacks.length
        ? `Known stacks: ${stacks.join(", ")}.`
        : "Run edms-ops from the project directory or pass --project-dir.",
    );
  }
  const file = stackFilePath(projectDir, stack);
  const { raw, dockerHost } = edmsConfig(config);
  try {
    return validateSettings(stack, raw, dockerHost);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw refuse(
        `${err.message}\n(in ${file}; nothing was changed)`,
        `Fix ${file} as each line says.`,
      );
    }
    throw err;
  }
}

/**
 * The settings a deploy hook or the scheduler is handed. Every Docker name must be the one the prefix and
 * generation make (a name like `-f` would be read by the docker CLI as a flag), and the environment must be
 * the stack file's where there is one: the variable cannot turn production into something a reset accepts.
 */
const UNSET_HANDED =
  "Run edms-ops without EDMS_SETTINGS_JSON (unset it): the stack file is read instead.";

function handedSettings(json: string, stack: string, projectDir: string): Settings {
  const what = "EDMS_SETTINGS_JSON (the settings a deploy hook is handed)";
  const handed = parseJson(json, ResolvedSettingsShape, what);
  if (handed.stack !== stack) {
    throw refuse(
      `${what} holds the settings of stack ${handed.stack}, not ${stack}. Nothing was changed.`,
      UNSET_HANDED,
    );
  }
  const expected = resourceNames(handed.namePrefix, handed.dataGeneration ?? 0);
  if (!isDeepStrictEqual(handed.names, expected)) {
    throw refuse(
      `${what} names Docker resources other than the ones edms:namePrefix \`${handed.namePrefix}\` gives. Nothing was changed.`,
      UNSET_HANDED,
    );
  }
  let fileEnvironment: unknown;
  try {
    fileEnvironment = edmsConfig(readStackConfig(projectDir, handed.stack)).raw.environment;
  } catch {
    fileEnvironment = undefined; // The scheduler has no stack file: the program handed it its settings.
  }
  if (fileEnvironment !== undefined && fileEnvironment !== handed.environment) {
    throw refuse(
      `${what} says environment ${handed.environment}, but ${stackFilePath(projectDir, handed.stack)} says ${String(fileEnvironment)}. Nothing was changed.`,
      UNSET_HANDED,
    );
  }
  return handed as unknown as Settings;
}

/**
 * Points the docker CLI at the stack's host. A `DOCKER_HOST` that names a different host than the stack
 * file is refused: acting on the wrong host is how production data gets lost.
 */
export function targetDockerHost(settings: Settings): void {
  const fromEnv = process.env.DOCKER_HOST;
  if (settings.dockerHost) {
    if (fromEnv && fromEnv !== settings.dockerHost) {
      throw refuse(
        `DOCKER_HOST=${fromEnv} but stack \`${settings.stack}\` deploys to \`docker:host\` ${settings.dockerHost}.`,
        "Unset DOCKER_HOST or fix the stack file.",
      );
    }
    process.env.DOCKER_HOST = settings.dockerHost;
  }
}
