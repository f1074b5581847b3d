import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Limited } from "../model/config/limits";
import {
  CONFINEMENT,
  LOG_DRIVER,
  LOG_OPTS,
  SECURITY_OPTS,
  TMPFS_OPTIONS,
} from "../model/hardening";
import { LABELS } from "../model/labels";
import { Settings } from "../model/settings";
import { stackLabels } from "./labels";

/** One of the stack's networks a container joins (components/network.ts). */
export interface StackNetwork {
  readonly name: pulumi.Input<string>;
  /** DNS names on this network besides the container name. */
  readonly aliases?: string[];
}

/** Where a stack container sits: its role label (plus any others) and the stack's networks it joins. */
export interface StackContainerPlace {
  readonly settings: Settings;
  /** Also what confines it (model/hardening.ts) and its `edms:limits` entry. */
  readonly role: Exclude<Limited, "helpers">;
  readonly labels?: Record<string, string>;
  /** The stack's networks (front, data); none for a container that only talks to the engine (the scheduler). */
  readonly networks?: readonly StackNetwork[];
}

/**
 * A long-running container of the stack, named `<component>-container`: restarted by Docker unless an operator
 * stopped it, labelled with the stack's labels and its role (edms-ops and the policy find containers by them),
 * on the stack's networks it is given, and confined as `confinement` says.
 */
export function stackContainer(
  component: string,
  place: StackContainerPlace,
  args: Omit<docker.ContainerArgs, "restart" | "labels" | "networksAdvanced" | Confined>,
  opts: pulumi.CustomResourceOptions,
): docker.Container {
  return new docker.Container(
    `${component}-container`,
    {
      ...args,
      ...confinement(place),
      restart: "unless-stopped",
      ...(place.networks?.length
        ? {
            networksAdvanced: place.networks.map((n) => ({
              name: n.name,
              ...(n.aliases ? { aliases: n.aliases } : {}),
            })),
          }
        : {}),
      labels: stackLabels(place.settings, { [LABELS.role]: place.role, ...place.labels }),
    },
    opts,
  );
}

/** The inputs `confinement` decides; a component cannot set them itself. */
type Confined =
  | "securityOpts"
  | "capabilities"
  | "readOnly"
  | "tmpfs"
  | "memory"
  | "memorySwap"
  | "logDriver"
  | "logOpts";

/**
 * No new privileges, every capability dropped but the role's, tmpfs for scratch (a read-only root where
 * nothing is uploaded into it), the role's memory limit with no swap on top, and rotated logs. The process limit of
 * `edms:limits` cannot be set here: @pulumi/docker 5.x has no such input.
 */
export function confinement(
  place: Pick<StackContainerPlace, "settings" | "role">,
): Pick<docker.ContainerArgs, Confined> {
  const { capabilities, tmpfs, readOnly, newPrivileges } = CONFINEMENT[place.role];
  const { memoryMb } = place.settings.limits[place.role];
  return {
    securityOpts: newPrivileges ? [] : [...SECURITY_OPTS],
    capabilities: { drops: ["ALL"], adds: [...capabilities] },
    readOnly,
    tmpfs: Object.fromEntries(tmpfs.map((path) => [path, TMPFS_OPTIONS])),
    memory: memoryMb,
    memorySwap: memoryMb,
    logDriver: LOG_DRIVER,
    logOpts: { ...LOG_OPTS },
  };
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
 *
 * Every 5 s: each check is an exec in the container, which costs the host ~0.16 s of CPU (measured: four
 * postgres containers checked every 2 s used 34% of a core, 2% without checks). Docker runs the checks for
 * the container's whole life, and the `startInterval` that would check faster only while starting needs
 * Docker 25 (API 1.44; Debian bookworm's engine is 20.10), so one interval serves both: the engine sees the
 * server ready at most 5 s after it is.
 */
export function healthyWhen(
  tests: string[],
): Pick<docker.ContainerArgs, "healthcheck" | "wait" | "waitTimeout"> {
  return {
    healthcheck: { tests, interval: "5s", timeout: "5s", retries: 24 },
    wait: true,
    waitTimeout: 120,
  };
}
