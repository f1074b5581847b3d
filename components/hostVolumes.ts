/**
 * What the program asks the Docker host before it declares anything: the volumes stacks labelled. The
 * stack's data under another `edms:namePrefix`, its prefix naming another stack's volumes, or its volumes
 * labelled with another environment stop the program (model/config/names.ts `hostVolumeProblems`) before any
 * resource is registered, so no replacement starts and nothing is deleted.
 */
import { spawnSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { LABELS } from "../model/labels";
import { hostVolumeProblems, LabelledVolume } from "../model/config/names";
import { ConfigError } from "../model/config/validate";
import type { Settings } from "../model/settings";

/** The volumes any stack labelled, or why they could not be listed. */
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

const VOLUME_FORMAT = [LABELS.role, LABELS.stack, LABELS.environment]
  .map((label) => `{{.Label "${label}"}}`)
  .reduce((format, field) => `${format}\t${field}`, "{{.Name}}");

/** `docker volume ls` on the host the provider deploys to (`docker:host`, as the hooks get it). */
export const dockerVolumes: VolumeLister = (settings) => {
  // Every stack's: a prefix that names another stack's volumes is refused too.
  const listed = spawnSync(
    "docker",
    ["volume", "ls", "--filter", `label=${LABELS.stack}`, "--format", VOLUME_FORMAT],
    { encoding: "utf8", timeout: 60_000, env: cliEnvironment(settings) },
  );
  if (listed.error || listed.status !== 0) {
    const why = listed.error?.message ?? listed.stderr.trim().split("\n")[0] ?? "";
    return { failed: why || `docker exited with ${String(listed.status)}` };
  }
  // Volume names hold no tab; a label value may, and only the last field takes it whole.
  return listed.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [name, role = "", stack = "", ...environment] = line.split("\t");
      return { name, role, stack, environment: environment.join("\t") };
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
  const { stack, environment, namePrefix } = settings;
  const problems = hostVolumeProblems(stack, environment, namePrefix, volumes);
  if (problems.length) {
    throw new ConfigError(stack, problems);
  }
}
