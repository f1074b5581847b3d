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

/** `docker volume ls` on the host the provider deploys to (`docker:host`, as the hooks get it). */
const dockerVolumes: VolumeLister = (settings) => {
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
      env: { ...process.env, ...(settings.dockerHost ? { DOCKER_HOST: settings.dockerHost } : {}) },
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
 * Throws a ConfigError when the stack's data lives on the host under another prefix. A host that cannot be
 * asked (no docker CLI, unreachable) is a warning: the provider then fails to deploy anything anyway.
 */
export function refuseMovedPrefix(settings: Settings): void {
  const volumes = lister(settings);
  if ("failed" in volumes) {
    void pulumi.log.warn(
      `Could not list stack \`${settings.stack}\`'s volumes on the Docker host (${volumes.failed}), so a changed \`edms:namePrefix\` is not checked: make \`docker volume ls\` work where \`pulumi\` runs.`,
    );
    return;
  }
  const problem = movedPrefixProblem(settings.stack, settings.namePrefix, volumes);
  if (problem) {
    throw new ConfigError(settings.stack, [problem]);
  }
}
