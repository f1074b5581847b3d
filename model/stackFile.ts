/**
 * The one reader of `Pulumi.<stack>.yaml`: edms-ops (which works without the Pulumi CLI) and the tests (which
 * hand the same values to the program under mocks) both go through it. No @pulumi import.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import type { RawConfig } from "./settings";

export class StackFileError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly reason: "missing" | "yaml",
  ) {
    super(message);
    this.name = "StackFileError";
  }
}

export function stackFilePath(projectDir: string, stack: string): string {
  return path.join(projectDir, `Pulumi.${stack}.yaml`);
}

/** The stacks that have a file in `projectDir`, sorted. */
export function knownStacks(projectDir: string): string[] {
  return fs
    .readdirSync(projectDir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

/** The `config:` map of a stack file, keys as written (`edms:version`, `docker:host`). */
export function readStackConfig(projectDir: string, stack: string): Record<string, unknown> {
  const file = stackFilePath(projectDir, stack);
  if (!fs.existsSync(file)) {
    throw new StackFileError(`there is no ${file}`, file, "missing");
  }
  try {
    const doc = (YAML.parse(fs.readFileSync(file, "utf8")) ?? {}) as { config?: unknown };
    return (doc.config ?? {}) as Record<string, unknown>;
  } catch (err) {
    throw new StackFileError(
      `${file} is not valid YAML: ${(err as Error).message.split("\n")[0]}`,
      file,
      "yaml",
    );
  }
}

/** The `edms:*` keys without their namespace, and `docker:host`, as `validateSettings` takes them. */
export function edmsConfig(config: Record<string, unknown>): {
  raw: RawConfig;
  dockerHost?: string;
} {
  const raw: RawConfig = {};
  let dockerHost: string | undefined;
  for (const [key, value] of Object.entries(config)) {
    if (key.startsWith("edms:")) {
      raw[key.slice("edms:".length)] = value;
    } else if (key === "docker:host") {
      dockerHost = String(value);
    }
  }
  return { raw, dockerHost };
}
