/**
 * Finds a stack's app containers by label instead of by fixed name: behind the proxy there is one web container
 * per release (two during a switch), so `<prefix>-web` no longer names "the" web. Which one serves is what the
 * proxy's live.cfg says; without the proxy it is the fixed-name container, as before.
 */
import { Settings } from "../../model/settings";
import { parseLiveBackend, PROXY_LIVE_CONFIG } from "../../model/proxy";
import { containerIdsByRole, ContainerInspectSchema, docker, RunResult } from "./docker";
import { engineless } from "./engineless";
import { parseJson } from "../core/json";
import { allSettledOrThrow } from "../core/errors";

export type AppRole = "web" | "worker" | "proxy";

export interface StackContainer {
  readonly name: string;
  readonly running: boolean;
  readonly health?: string;
  /** Image id the container runs. */
  readonly image: string;
  readonly labels: Record<string, string>;
}

/** Every container of the stack with label `edms.role=<role>`, running or not, oldest first. */
export async function containersOf(settings: Settings, role: AppRole): Promise<StackContainer[]> {
  const ids = await containerIdsByRole(settings.stack, role);
  if (!ids.length) {
    return [];
  }
  const inspected = (await docker(["container", "inspect", ...ids])).stdout;
  const infos = parseJson(
    inspected,
    ContainerInspectSchema,
    "docker inspect of the stack's containers",
  );
  return infos
    .sort((a, b) => String(a.Created).localeCompare(String(b.Created)))
    .map((info) => ({
      name: String(info.Name).replace(/^\//, ""),
      running: info.State.Running === true,
      health: info.State.Health?.Status,
      image: info.Image,
      labels: info.Config.Labels ?? {},
    }));
}

async function webAndWorkers(settings: Settings): Promise<StackContainer[]> {
  return [...(await containersOf(settings, "web")), ...(await containersOf(settings, "worker"))];
}

/** Web and worker containers of the stack (all releases present), e.g. to stop every writer. */
export async function appContainers(settings: Settings): Promise<string[]> {
  return (await webAndWorkers(settings)).map((c) => c.name);
}

/**
 * Those of the stack's web and worker containers that are running (restarting and paused ones too: docker
 * counts them so). A failed inspection fails it: a writer never passes for stopped.
 */
export async function runningAppContainers(settings: Settings): Promise<string[]> {
  return (await webAndWorkers(settings)).filter((c) => c.running).map((c) => c.name);
}

/** The release the proxy currently sends traffic to, from its live.cfg; null when none or no proxy. */
export async function liveRelease(
  settings: Settings,
): Promise<{ container: string; version: string } | null> {
  const read = await docker(["exec", settings.names.proxyContainer, "cat", PROXY_LIVE_CONFIG], {
    allowFailure: true,
  });
  return read.code === 0 ? parseLiveBackend(read.stdout) : null;
}

/**
 * The web container that serves the stack: the proxy's live one, or (no proxy) the fixed-name one. Null when
 * there is none. Like `docker inspect` before, a stopped container still counts (restore stops it on purpose).
 */
export async function liveWeb(settings: Settings): Promise<StackContainer | null> {
  const webs = await containersOf(settings, "web");
  const wanted = settings.proxy.enabled
    ? (await liveRelease(settings))?.container
    : settings.names.webContainer;
  return webs.find((w) => w.name === wanted) ?? null;
}

/** The running web container to run an in-network probe or copy credentials from: the live one first. */
export async function anyRunningWeb(settings: Settings): Promise<StackContainer | null> {
  const live = await liveWeb(settings);
  if (live?.running) {
    return live;
  }
  return (await containersOf(settings, "web")).reverse().find((w) => w.running) ?? null;
}

/**
 * What serves the stack when it is up: the live web and the worker. Commands that stop writers start these
 * afterwards, not only what they themselves stopped, so a run after a killed one brings the stack back too.
 */
export async function servingContainers(settings: Settings): Promise<string[]> {
  const web = await liveWeb(settings);
  const workers = await containersOf(settings, "worker");
  return [...(web ? [web.name] : []), ...workers.map((w) => w.name)];
}

/** The release the live web runs (its `edms.version` label), null when none runs. */
export async function runningVersion(settings: Settings): Promise<string | null> {
  if (engineless()) {
    // The scheduler cannot see containers. Its `edms:version` is no witness either: it starts before the
    // deploy's health gate, so a failed deploy's release would pass for the running one.
    return null;
  }
  const web = await liveWeb(settings);
  return web ? (web.labels["edms.version"] ?? null) : null;
}

/**
 * `docker start` of each container at once (the CLI starts the ones it is given one after the other): web's
 * and the worker's start waits overlap. Once every start has ended: the first failure (thrown, unless
 * `allowFailure`), else success.
 */
export async function startEach(
  names: readonly string[],
  options: { readonly allowFailure?: boolean } = {},
): Promise<RunResult> {
  const results = await allSettledOrThrow(names.map((name) => docker(["start", name], options)));
  return results.find((r) => r.code !== 0) ?? { code: 0, stdout: "", stderr: "" };
}
