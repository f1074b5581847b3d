/**
 * What the program asks the Docker host before it declares anything: its volumes and their labels. The
 * stack's data under another `edms:namePrefix`, its prefix naming another stack's volumes, its volumes
 * labelled with another environment, or an unlabelled volume under a name it declares stop the program
 * (model/config/names.ts `hostVolumeProblems`) before any resource is registered, so no replacement starts
 * and nothing is deleted.
 */
import { spawnSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { LABELS } from "../model/labels";
import { declaredVolumeRoles } from "../model/protection";
import { hostVolumeProblems, LabelledVolume } from "../model/config/names";
import { ConfigError } from "../model/config/validate";
import type { Settings } from "../model/settings";

/** The host's volumes with the labels stacks give them ("" where none), or why they could not be listed. */
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
  // Every volume, labelled or not: a prefix that names another stack's volumes, or one of the stack's names
  // taken by a volume without its labels, is refused too.
  const listed = spawnSync("docker", ["volume", "ls", "--format", VOLUME_FORMAT], {
    encoding: "utf8",
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
    env: cliEnvironment(settings),
  });
  if (listed.error || listed.status !== 0) {
    const why = listed.error?.message ?? listed.stderr.trim().split("\n")[0] ?? "";
    const how = listed.signal
      ? `was killed by ${listed.signal}`
      : `exited with ${String(listed.status)}`;
    return { failed: why || `docker ${how}` };
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
 * Throws a ConfigError naming what `hostVolumeProblems` finds on the host, or when `pulumi up` cannot ask
 * the host (the provider may still reach it, and the deploy would go ahead unchecked; the hooks
 * need the docker CLI there anyway). A preview that cannot ask warns.
 */
export function refuseHostVolumeProblems(settings: Settings): void {
  const volumes = lister(settings);
  if ("failed" in volumes) {
    const what = `Could not list stack \`${settings.stack}\`'s volumes on the Docker host (${volumes.failed})`;
    if (!pulumi.runtime.isDryRun()) {
      throw new ConfigError(settings.stack, [
        `${what}, so the stack's volumes (their prefix, their stack and environment labels) cannot be checked before the deploy. Nothing was changed. Make \`docker volume ls\` work where \`pulumi up\` runs (the deploy hooks need the docker CLI and \`docker:host\` too), then run it again.`,
      ]);
    }
    void pulumi.log.warn(
      `${what}, so this preview does not check the stack's volumes; \`pulumi up\` refuses to deploy until it can.`,
    );
    return;
  }
  // The data volumes among them: redis holds cache only.
  const declared = declaredVolumeRoles(settings)
    .filter((role) => role !== "redis")
    .map((role) => settings.names[`${role}Volume`]);
  const problems = hostVolumeProblems(settings, declared, volumes);
  if (problems.length) {
    throw new ConfigError(settings.stack, problems);
  }
}
