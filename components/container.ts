import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { LABELS } from "../model/labels";
import { Settings } from "../model/settings";
import { stackLabels } from "./labels";

/** Where a stack container sits: its role label (plus any others) and its place on the internal network. */
export interface StackContainerPlace {
  readonly settings: Settings;
  readonly role: string;
  readonly labels?: Record<string, string>;
  /** The stack's internal network; none for a container that only talks to the engine (the scheduler). */
  readonly network?: pulumi.Input<string>;
  /** DNS names on the internal network besides the container name. */
  readonly aliases?: string[];
}

/**
 * A long-running container of the stack, named `<component>-container`: restarted by Docker unless an operator
 * stopped it, labelled with the stack's labels and its role (edms-ops and the policy find containers by them),
 * on the stack's internal network (when it has one).
 */
export function stackContainer(
  component: string,
  place: StackContainerPlace,
  args: Omit<docker.ContainerArgs, "restart" | "labels" | "networksAdvanced">,
  opts: pulumi.CustomResourceOptions,
): docker.Container {
  return new docker.Container(
    `${component}-container`,
    {
      ...args,
      restart: "unless-stopped",
      ...(place.network
        ? {
            networksAdvanced: [
              { name: place.network, ...(place.aliases ? { aliases: place.aliases } : {}) },
            ],
          }
        : {}),
      labels: stackLabels(place.settings, { [LABELS.role]: place.role, ...place.labels }),
    },
    opts,
  );
}

/**
 * A secret (or config) handed to a container as a file, never env or argv. World-readable inside the
 * container by default, as Docker secrets are: the images read them after dropping to their own user.
 */
export function secretFile(
  file: string,
  content: pulumi.Input<string>,
  permissions = "0444",
): docker.types.input.ContainerUpload {
  return { file, content, permissions };
}

/**
 * A healthcheck the engine waits for (`wait`): the container counts as created once `tests` pass, so what
 * depends on it (hooks, the app) starts against a server that answers. Two minutes at most.
 */
export function healthyWhen(
  tests: string[],
): Pick<docker.ContainerArgs, "healthcheck" | "wait" | "waitTimeout"> {
  return {
    healthcheck: { tests, interval: "2s", timeout: "5s", retries: 30 },
    wait: true,
    waitTimeout: 120,
  };
}
