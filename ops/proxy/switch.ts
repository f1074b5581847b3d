/**
 * The zero-downtime switch: the configured release's web must answer /health/ 200 by itself, then the proxy's
 * live.cfg is rewritten (checked by HAProxy first) and the proxy reloads seamlessly. The old proxy worker keeps
 * serving its in-flight requests against the old web until they finish (bounded by `hard-stop-after`); only
 * then does the deploy go on, and the engine deletes the old web at the end of the update.
 */
import { Settings } from "../../model/settings";
import {
  liveBackend,
  LiveRelease,
  PROXY_DRAIN_SECONDS,
  PROXY_LIVE_CONFIG,
  PROXY_MAIN_CONFIG,
  webContainerName,
} from "../../model/proxy";
import { docker, inspectContainer } from "../engine/docker";
import { failure, refuse } from "../core/errors";
import { httpProbe, publicHealthUrl, WEB_HEALTH_URL } from "../reports/health";
import { probeHost } from "../../model/https";
import { progress } from "../core/log";
import { liveRelease } from "../engine/services";

export interface SwitchOptions {
  /** Seconds the new web has to become healthy. */
  readonly wait: number;
  /** Pause between probes, ms (tests shorten nothing here; it is only the poll interval). */
  readonly interval?: number;
}

export interface SwitchResult {
  readonly from: string | null;
  readonly to: string;
  readonly switched: boolean;
  /** Seconds until the old proxy worker had finished its in-flight requests. */
  readonly drainedIn?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function switchProxy(
  settings: Settings,
  options: SwitchOptions,
): Promise<SwitchResult> {
  const target = webContainerName(settings);
  const before = await healthyTarget(settings, target, options);
  if (
    before?.container === target &&
    (await servedVersion(settings, target)) === settings.version
  ) {
    progress(`${target} is already live`);
    return { from: before.container, to: target, switched: false };
  }
  progress(
    `switching ${settings.names.proxyContainer}: ${before?.container ?? "(none)"} → ${target}`,
  );
  const drainedIn = await pointProxyAt(settings, target, before, options);
  return { from: before?.container ?? null, to: target, switched: true, drainedIn };
}

/**
 * Checks the proxy runs and the release's web exists (starting it again after a failed switch), and waits
 * until it answers /health/ 200; otherwise stops it and fails with the proxy untouched. Returns what is live.
 */
async function healthyTarget(
  settings: Settings,
  target: string,
  options: SwitchOptions,
): Promise<LiveRelease | null> {
  if (!settings.proxy.enabled) {
    throw refuse(
      `Stack ${settings.stack} runs without the proxy (\`edms:proxy.enabled: false\`); there is nothing to switch.`,
      "Turn it on with `edms:proxy: {enabled: true}` and `pulumi up`, which switches for you.",
    );
  }
  const proxy = settings.names.proxyContainer;
  const version = settings.version;
  if (!(await inspectContainer(proxy)).running) {
    throw failure(
      `Proxy container ${proxy} is not running.`,
      `Run \`pulumi up --stack ${settings.stack}\` to create it.`,
    );
  }
  const web = await inspectContainer(target);
  if (!web.exists) {
    throw failure(
      `Web container ${target} of release ${version} does not exist.`,
      `Run \`pulumi up --refresh --stack ${settings.stack}\` to create it.`,
    );
  }
  if (!web.running) {
    // A retry of a release whose earlier switch failed and stopped it.
    progress(`starting ${target}`);
    await docker(["start", target]);
  }
  const before = await liveRelease(settings);
  progress(`waiting up to ${options.wait}s for ${target} to answer /health/ 200`);
  const healthy = await waitFor(options, async () => {
    const probe = await httpProbe(target, WEB_HEALTH_URL, probeHost(settings));
    return { ok: probe.status === 200, detail: describe(probe.status, probe.body, probe.detail) };
  });
  if (!healthy.ok) {
    // Out of service, but not removed: the engine's state stays true. The next `pulumi up` of another release
    // deletes it; a retry of this one finds it stopped, starts it in place and this switch runs again.
    await docker(["stop", target], { allowFailure: true });
    throw failure(
      `Release ${version} is not healthy: ${target} did not answer /health/ 200 within ${options.wait}s (last: ${healthy.detail}). ` +
        `The proxy still sends every request to ${before ? `${before.container} (release ${before.version})` : "nothing (no release was live)"}; ` +
        `${target} was stopped.`,
      `Fix the release, or roll back: \`edms-ops rollback --previous --backup-first --stack ${settings.stack}\`.`,
    );
  }
  return before;
}

/** Points live.cfg at `target`, reloads HAProxy seamlessly and waits for the old worker to drain; seconds it took. */
async function pointProxyAt(
  settings: Settings,
  target: string,
  before: LiveRelease | null,
  options: SwitchOptions,
): Promise<number> {
  const proxy = settings.names.proxyContainer;
  const version = settings.version;
  const staged = `${PROXY_LIVE_CONFIG}.new`;
  // Written and checked aside, then renamed: a config HAProxy rejects never becomes live.cfg.
  const check = await docker(
    [
      "exec",
      "-i",
      "-u",
      "0",
      proxy,
      "sh",
      "-c",
      `cat > ${staged} && haproxy -c -q -f ${PROXY_MAIN_CONFIG} -f ${staged} && mv ${staged} ${PROXY_LIVE_CONFIG}`,
    ],
    { input: liveBackend({ container: target, version }), allowFailure: true },
  );
  if (check.code !== 0) {
    throw failure(
      `HAProxy rejected the switch to ${target}; nothing changed, ${before?.container ?? "nothing"} still serves:\n${(check.stderr + check.stdout).trim()}`,
      `Fix the cause HAProxy names, then run \`edms-ops switch --stack ${settings.stack}\` again.`,
    );
  }
  const workersBefore = await proxyWorkers(proxy);
  await docker(["kill", "--signal", "USR2", proxy]);
  const switched = await waitFor({ wait: 30, interval: options.interval }, async () => {
    const served = await servedVersion(settings, target);
    return { ok: served === version, detail: `proxy answers with ${served ?? "an error"}` };
  });
  if (!switched.ok) {
    throw failure(
      `The proxy did not take the new configuration (${switched.detail}).`,
      `See \`docker logs ${proxy}\`, then run \`edms-ops switch --stack ${settings.stack}\` again.`,
    );
  }
  const started = Date.now();
  // The old worker exits once its last in-flight request is answered; HAProxy stops it at hard-stop-after.
  const drained = await waitFor({ wait: PROXY_DRAIN_SECONDS + 10, interval: 200 }, async () => {
    const now = await proxyWorkers(proxy);
    return { ok: !now.some((pid) => workersBefore.includes(pid)), detail: `${now.length} workers` };
  });
  const drainedIn = (Date.now() - started) / 1000;
  progress(
    drained.ok
      ? `old proxy worker drained in ${drainedIn.toFixed(1)}s`
      : `old proxy worker still running after ${drainedIn.toFixed(0)}s (${drained.detail})`,
  );
  return drainedIn;
}

/**
 * Before the proxy is first created on a stack that ran without it, the fixed-name web of that time still
 * publishes the port the proxy needs. Once the new release's web (internal only) answers /health/ 200, that old
 * web is stopped: the outage is the proxy's start and the switch, seconds, instead of a failed `pulumi up`.
 * The engine deletes the stopped container at the end of the update (the program no longer declares it).
 */
export async function takeOverPort(settings: Settings, options: SwitchOptions): Promise<string> {
  const old = settings.names.webContainer;
  const inspected = await docker(
    [
      "container",
      "inspect",
      "--format",
      "{{.State.Running}} {{json .HostConfig.PortBindings}}",
      old,
    ],
    { allowFailure: true },
  );
  const [running, ...bindings] = inspected.stdout.trim().split(" ");
  if (
    inspected.code !== 0 ||
    running !== "true" ||
    !bindings.join(" ").includes(`"HostPort":"${settings.httpPort}"`)
  ) {
    return `nothing else publishes port ${settings.httpPort}`;
  }
  const target = webContainerName(settings);
  progress(
    `${old} (without the proxy) holds port ${settings.httpPort}; waiting for ${target} to be healthy first`,
  );
  const healthy = await waitFor(options, async () => {
    const probe = await httpProbe(target, WEB_HEALTH_URL, probeHost(settings));
    return { ok: probe.status === 200, detail: describe(probe.status, probe.body, probe.detail) };
  });
  if (!healthy.ok) {
    throw failure(
      `Release ${settings.version} is not healthy (${target}: ${healthy.detail}); ${old} keeps serving on port ${settings.httpPort} and the proxy was not created.`,
      "Fix the release, or turn the proxy off again (`edms:proxy: {enabled: false}`).",
    );
  }
  await docker(["stop", old]);
  return `stopped ${old} so the proxy can take port ${settings.httpPort}; the engine removes it at the end of this update`;
}

/** The release that answers a request through the proxy, probed from the new web container. */
async function servedVersion(settings: Settings, from: string): Promise<string | null> {
  const probe = await httpProbe(from, publicHealthUrl(settings), probeHost(settings));
  return probe.status === 200 ? (probe.body?.version ?? null) : null;
}

/** PIDs of HAProxy worker processes in the proxy container (PID 1 is the master). */
async function proxyWorkers(proxy: string): Promise<string[]> {
  // /proc instead of ps: the official image has no procps.
  const script =
    'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = haproxy ] && echo "${p#/proc/}"; done';
  const result = await docker(["exec", proxy, "sh", "-c", script], { allowFailure: true });
  return result.stdout.split("\n").filter((pid) => pid && pid !== "1");
}

async function waitFor(
  options: SwitchOptions,
  attempt: () => Promise<{ ok: boolean; detail: string }>,
): Promise<{ ok: boolean; detail: string }> {
  const deadline = Date.now() + options.wait * 1000;
  for (;;) {
    const result = await attempt();
    if (result.ok || Date.now() >= deadline) {
      return result;
    }
    await sleep(options.interval ?? 1000);
  }
}

function describe(
  status: number | null,
  body: { checks?: Record<string, string> } | undefined,
  detail: string,
): string {
  if (status === null) {
    return detail;
  }
  const failing = Object.entries(body?.checks ?? {}).filter(([, v]) => v !== "ok");
  return failing.length
    ? `${status}: ${failing.map(([k, v]) => `${k} ${v}`).join(", ")}`
    : `${status}`;
}
