/** The checks behind `edms-ops health` and the deploy's health gate. */
import { externalDatabaseCheck } from "../database/postgres";
import { POSTGRES_DB, POSTGRES_USER, REDIS_CLI } from "../../model/containers";
import { Settings } from "../../model/settings";
import { probeHost } from "../../model/https";
import { PROXY_HTTP_PORT, PROXY_HTTPS_PORT, WEB_INTERNAL_PORT } from "../../model/proxy";
import { notFutureDated } from "../store/retention";
import { BackupListing, listBackups } from "../store/catalog";
import { docker } from "../engine/docker";
import { drillResults } from "../backup/drill";
import { describeIncompleteRestore, readMarker } from "../store/markers";
import { BackupEntry } from "../store/restic";
import { anyRunningWeb, containersOf } from "../engine/services";
import { z } from "zod";
import { tryParseJson } from "../core/json";

/** What the app's /health/ answers with (the sample app's contract): release and per-check states. */
const HealthBodySchema = z.looseObject({
  version: z
    .string()
    .nullish()
    .transform((v) => v ?? undefined),
  // A check's state as the app says it; anything but the string "ok" counts as failing.
  checks: z
    .record(
      z.string(),
      z.unknown().transform((v) => (typeof v === "string" ? v : JSON.stringify(v))),
    )
    .optional(),
});

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

async function execCheck(
  name: string,
  args: string[],
  expect?: RegExp,
  /** The detail when `timeout` ended the command (exit 124; busybox's ends it by SIGTERM: 143). */
  late?: string,
): Promise<CheckResult> {
  const result = await docker(["exec", ...args], { allowFailure: true });
  const text = (result.stdout + result.stderr).trim();
  const ok = result.code === 0 && (!expect || expect.test(text));
  const timedOut = late !== undefined && (result.code === 124 || result.code === 143);
  return {
    name,
    ok,
    detail: ok ? "ok" : timedOut ? late : text.split("\n").pop() || `exit ${result.code}`,
  };
}

export interface HttpProbe {
  /** The HTTP status, or null when the request itself failed (detail says why). */
  readonly status: number | null;
  readonly detail: string;
  /** /health/'s JSON body, when there was one. */
  readonly body?: z.output<typeof HealthBodySchema>;
}

/**
 * GET `url` from inside `container` (on the stack's network, where the web containers and the proxy's
 * internal listener are; the operator's machine may not reach the published port of a remote host), with
 * `host` as the Host header when given (model/https.ts probeHost: one the app is configured to answer).
 * A redirect is reported, not followed; an https URL is the proxy's own TLS frontend, whose certificate
 * names the public host, not the container: it is not verified here.
 */
export async function httpProbe(container: string, url: string, host?: string): Promise<HttpProbe> {
  const probe = probeScript(url, host);
  const result = await docker(["exec", container, "python3", "-c", probe], { allowFailure: true });
  if (result.code !== 0) {
    return {
      status: null,
      detail: (result.stderr.trim().split("\n").pop() ?? "") || `${container} not answering`,
    };
  }
  const [status, ...rest] = result.stdout.trim().split("\n");
  const body = tryParseJson(rest.join("\n"), HealthBodySchema);
  return body.ok
    ? { status: Number(status), detail: status, body: body.value }
    : { status: Number(status), detail: `${status}, body not JSON` };
}

/**
 * Seconds a probe may take in all: urllib's timeout bounds each read, not the answer, and an app that sends
 * one byte at a time (or a redis paused by a client) must not hold a deploy's health gate for ever.
 */
export const PROBE_SECONDS = 30;

/** REDIS_CLI under `timeout` when the image has one. */
const REDIS_PING = `t=; if command -v timeout >/dev/null 2>&1; then t="timeout ${PROBE_SECONDS}"; fi; ${REDIS_CLI.replace("exec redis-cli", "exec $t redis-cli")}`;

/** The probe's Python (run with `python3 -c`): prints the status, then the body. */
export function probeScript(url: string, host?: string, seconds = PROBE_SECONDS): string {
  const headers = host ? { Host: host } : {};
  return (
    "import json,signal,ssl,sys,urllib.request,urllib.error\n" +
    "def late(*_):\n" +
    ` sys.stderr.write("no whole answer within ${seconds} s\\n"); sys.exit(1)\n` +
    `signal.signal(signal.SIGALRM, late); signal.alarm(${seconds})\n` +
    "class Keep(urllib.request.HTTPRedirectHandler):\n def redirect_request(self,*a,**k): return None\n" +
    "get=urllib.request.build_opener(Keep,urllib.request.HTTPSHandler(context=ssl._create_unverified_context())).open\n" +
    `try:\n r=get(urllib.request.Request(${JSON.stringify(url)},headers=${JSON.stringify(headers)}),timeout=10); code=r.status; body=r.read()\n` +
    "except urllib.error.HTTPError as e:\n code=e.code; body=e.read()\n" +
    "print(code); print(body.decode())"
  );
}

/** gunicorn in a web container, from inside it: the release's own answer, without the proxy. */
export const WEB_HEALTH_URL = `http://127.0.0.1:${WEB_INTERNAL_PORT}/health/`;

/**
 * The URL a user's request takes: through the proxy when there is one (its HTTPS frontend with TLS, as its
 * plain one then only redirects), else straight to gunicorn.
 */
export function publicHealthUrl(settings: Settings): string {
  if (!settings.proxy.enabled) {
    return WEB_HEALTH_URL;
  }
  return settings.proxy.tls
    ? `https://${settings.names.proxyContainer}:${PROXY_HTTPS_PORT}/health/`
    : `http://${settings.names.proxyContainer}:${PROXY_HTTP_PORT}/health/`;
}

/** db, redis, media and migrations are checked by the app's own /health/, reached the way users reach it. */
export async function runChecks(settings: Settings): Promise<CheckResult[]> {
  const n = settings.names;
  // Independent checks, asked at once (a deploy's gate waits on each round); reported in this order.
  const [postgres, redis, restore, workers, http] = await Promise.all([
    settings.database
      ? externalDatabaseCheck(settings).then((check) => ({ name: "postgres", ...check }))
      : execCheck("postgres", [
          n.postgresContainer,
          "pg_isready",
          "-U",
          POSTGRES_USER,
          "-d",
          POSTGRES_DB,
        ]),
    // Authenticated from the password file inside the container: no password in argv.
    // Bounded where the image has `timeout` (Debian's and alpine's redis do): a client that paused the
    // server (CLIENT PAUSE) would hold the gate for ever.
    execCheck(
      "redis",
      [n.redisContainer, "sh", "-c", REDIS_PING, "redis-cli", "ping"],
      /PONG/,
      `no answer within ${PROBE_SECONDS} s`,
    ),
    readMarker(settings, "restore"),
    containersOf(settings, "worker"),
    httpChecks(settings),
  ]);
  const results: CheckResult[] = [postgres, redis];
  // Half-restored data must not pass the deploy's gate, however well the app answers.
  if (restore) {
    results.push({
      name: "restore",
      ok: false,
      detail: describeIncompleteRestore(settings, restore),
    });
  }
  results.push({
    name: "worker",
    ok: workers.some((w) => w.running),
    detail: workers.some((w) => w.running) ? "ok" : workers.length ? "not running" : "missing",
  });
  results.push(...http);
  return results;
}

/** The app's /health/ reached the way users reach it, its own checks, and the release it reports. */
async function httpChecks(settings: Settings): Promise<CheckResult[]> {
  const web = await anyRunningWeb(settings);
  if (!web) {
    return [{ name: "http", ok: false, detail: "no web container running" }];
  }
  const probe = await httpProbe(web.name, publicHealthUrl(settings), probeHost(settings));
  const where = settings.proxy.enabled ? " (through the proxy)" : "";
  if (probe.status === null) {
    return [{ name: `http${where}`, ok: false, detail: probe.detail }];
  }
  const results: CheckResult[] = [
    { name: `http /health/${where}`, ok: probe.status === 200, detail: String(probe.status) },
  ];
  if (probe.body?.checks) {
    for (const [name, value] of Object.entries(probe.body.checks)) {
      results.push({ name, ok: value === "ok", detail: value });
    }
  } else {
    results.push({ name: "health body", ok: false, detail: "not JSON" });
  }
  if (settings.proxy.enabled && probe.body?.version !== settings.version) {
    // The gate must not pass on the old release still answering.
    results.push({
      name: "release",
      ok: false,
      detail: `proxy serves ${probe.body?.version ?? "nothing"}, configured ${settings.version}`,
    });
  }
  return results;
}

/** The newest backup not failed by its latest drill: reported by `health`, never part of its verdict. */
export interface BackupFreshness {
  readonly newestGood: string | null;
  readonly time: string | null;
  readonly ageHours: number | null;
  /** Newer backups whose latest drill failed (not counted as good). */
  readonly failedDrills: string[];
  readonly problem?: string;
}

/**
 * Pure: the newest backup whose latest drill did not fail, and its age at `now` (the host's clock). A backup
 * dated after `now` (retention.ts isFutureDated) is never it.
 */
export function newestGood(
  complete: readonly BackupEntry[],
  drills: ReadonlyMap<string, boolean>,
  now: number,
): BackupFreshness {
  const failedDrills: string[] = [];
  for (const entry of notFutureDated(complete, now).reverse()) {
    if (drills.get(entry.id) === false) {
      failedDrills.push(entry.id);
      continue;
    }
    const ageHours = Math.round(((now - Date.parse(entry.time)) / 3_600_000) * 10) / 10;
    return { newestGood: entry.id, time: entry.time, ageHours, failedDrills };
  }
  return { newestGood: null, time: null, ageHours: null, failedDrills };
}

export async function backupFreshness(
  settings: Settings,
  /** The listing the caller already has under way (status), instead of a second one. */
  listing: Promise<BackupListing> = listBackups(settings, { legacy: false }),
): Promise<BackupFreshness> {
  try {
    const [{ complete, hostTime }, drills] = await Promise.all([listing, drillResults(settings)]);
    return newestGood(complete, drills, hostTime ? Date.parse(hostTime) : Date.now());
  } catch (err) {
    return {
      newestGood: null,
      time: null,
      ageHours: null,
      failedDrills: [],
      problem: (err as Error).message.split("\n")[0],
    };
  }
}
