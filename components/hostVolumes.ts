/**
 * What the program asks the Docker host before it declares anything: the volumes labelled as the stack's.
 * A data volume of the stack named with another `edms:namePrefix` stops the program (model/config/names.ts
 * `movedPrefixProblem`) before any resource is registered, so no replacement starts and nothing is deleted.
 */
import { spawnSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { LABELS } from "../model/labels";
import { LabelledVolume, movedPrefixProblem } from "../model/config/names";
import { ConfigError } from "../model/config/validate";
import type { Settings } from "../model/settings";

/** The stack's labelled volumes, or why they could not be listed. */
export type VolumeLister = (
  settings: Settings,
) => readonly LabelledVolume[] | { readonly failed: string };

/**
 * The CLI's environment: the program's own without what the language host put there for the program
 * (`PULUMI_CONFIG` holds the stack's config decrypted), plus `docker:host` as DOCKER_HOST.
 */
function cliEnvironment(settings: Settings): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith("PULUMI_")),
  );
  return { ...env, ...(settings.dockerHost ? { DOCKER_HOST: settings.dockerHost } : {}) };
}

/** `docker volume ls` on the host the provider deploys to (`docker:host`, as the hooks get it). */
export const dockerVolumes: VolumeLister = (settings) => {
  const listed = spawnSync(
    "docker",
    [
      "volume",
      "ls",
      "--filter",
      `label=${LABELS.stack}=${settings.stack}`,
      "--format",
      `{{.Name}} {{.Label "${LABELS.role}"}}`,
    ],
    {
      encoding: "utf8",
      timeout: 60_000,
      env: cliEnvironment(settings),
    },
  );
  if (listed.error || listed.status !== 0) {
    const why = listed.error?.message ?? listed.stderr.trim().split("\n")[0] ?? "";
    return { failed: why || `docker exited with ${String(listed.status)}` };
  }
  return listed.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [name, role = ""] = line.split(" ");
      return { name, role };
    });
};

let lister: VolumeLister = dockerVolumes;

/** Tests under mocks give the host's volumes here; undefined puts the docker CLI back. */
export function listVolumesWith(replacement: VolumeLister | undefined): void {
  lister = replacement ?? dockerVolumes;
}

/**
 * Throws a ConfigError when the stack's data lives on the host under another prefix, or when `pulumi up`
 * cannot ask the host (the provider may still reach it, and the deploy would go ahead unchecked; the hooks
 * need the docker CLI there anyway). A preview that cannot ask warns.
 */
export function refuseMovedPrefix(settings: Settings): void {
  const volumes = lister(settings);
  if ("failed" in volumes) {
    const what = `Could not list stack \`${settings.stack}\`'s volumes on the Docker host (${volumes.failed})`;
    if (!pulumi.runtime.isDryRun()) {
      throw new ConfigError(settings.stack, [
        `${what}, so a changed \`edms:namePrefix\` cannot be checked before the deploy. Nothing was changed. Make \`docker volume ls\` work where \`pulumi up\` runs (the deploy hooks need the docker CLI and \`docker:host\` too), then run it again.`,
      ]);
    }
    void pulumi.log.warn(
      `${what}, so this preview does not check a changed \`edms:namePrefix\`; \`pulumi up\` refuses to deploy until it can.`,
    );
    return;
  }
  const problem = movedPrefixProblem(settings.stack, settings.namePrefix, volumes);
  if (problem) {
    throw new ConfigError(settings.stack, [problem]);
  }
}
