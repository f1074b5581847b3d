/**
 * Sends alert messages from the scheduler container to the targets the program uploaded there as files
 * (model/containers.ts ALERT_TARGET_FILES): Apprise reads its URLs with `--config <file>`, the webhook URL is
 * read by this process and POSTed to with node's fetch. No URL is ever in argv, env, a log line or a record:
 * targets are shown redacted (scheme and host) and any error text is scrubbed of every part of them.
 */
import * as fs from "fs";
import { ALERT_TARGET_FILES } from "../../model/containers";
import { redactTarget } from "../../model/settings";
import { run } from "../engine/docker";
import type { AlertDelivery, AlertMessage } from "../store/records";
import { printableMessage, renderText } from "./decide";

const SEND_TIMEOUT_MS = 60_000;

export interface AlertTargets {
  readonly apprise: string[];
  readonly webhook: string | null;
  /** Where Apprise's config is (the file itself is handed to apprise, never its lines). */
  readonly appriseFile: string;
}

function readLines(file: string): string[] {
  if (!fs.existsSync(file)) {
    return [];
  }
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

/** The targets uploaded into this container; none outside it. */
export function readTargets(
  files: { readonly apprise: string; readonly webhook: string } = ALERT_TARGET_FILES,
): AlertTargets {
  return {
    apprise: readLines(files.apprise),
    webhook: readLines(files.webhook)[0] ?? null,
    appriseFile: files.apprise,
  };
}

export function hasTargets(targets: AlertTargets): boolean {
  return targets.apprise.length > 0 || targets.webhook !== null;
}

/** What evidence shows: each target redacted. */
export function describeTargets(targets: AlertTargets): string[] {
  return [
    ...targets.apprise.map((u) => `apprise ${redactTarget(u)}`),
    ...(targets.webhook ? [`webhook ${redactTarget(targets.webhook)}`] : []),
  ];
}

/**
 * `text` without any piece of the secret URLs: each URL whole, then every run of 4+ characters between
 * its separators (user, password, host, token path segments, query values), longest first.
 */
export function scrub(text: string, secrets: readonly string[]): string {
  const pieces = secrets
    .flatMap((s) => [s, ...s.split(/[:/@?&=#.,;]+/)])
    .filter((p) => p.length >= 4 && !/^(https?|json|xml|form)$/i.test(p))
    .sort((a, b) => b.length - a.length);
  let out = text;
  for (const piece of pieces) {
    out = out.split(piece).join("…");
  }
  return out.replace(/\s+/g, " ").trim().slice(0, 300);
}

async function sendApprise(targets: AlertTargets, m: AlertMessage): Promise<AlertDelivery> {
  const { title, body } = renderText(m);
  const target = `apprise (${targets.apprise.map(redactTarget).join(", ")})`;
  const notifyType = m.state === "resolved" ? "success" : m.state === "test" ? "info" : "failure";
  try {
    // Body on stdin; the URLs only in the file apprise reads.
    const result = await run(
      "apprise",
      ["--title", title, "--notification-type", notifyType, "--config", targets.appriseFile],
      { input: body, allowFailure: true, signal: AbortSignal.timeout(SEND_TIMEOUT_MS) },
    );
    if (result.code === 0) {
      return { target, ok: true, error: null };
    }
    const why = (result.stderr + result.stdout).trim().split("\n").pop() ?? "";
    return {
      target,
      ok: false,
      error: scrub(`apprise exit ${result.code}: ${why}`, targets.apprise),
    };
  } catch (err) {
    return { target, ok: false, error: scrub(String((err as Error).message), targets.apprise) };
  }
}

async function sendWebhook(url: string, m: AlertMessage): Promise<AlertDelivery> {
  const target = `webhook ${redactTarget(url)}`;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "edms-ops alerts" },
      body: JSON.stringify(printableMessage(m)),
      signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
      redirect: "error",
    });
    await response.arrayBuffer().catch(() => undefined);
    return response.ok
      ? { target, ok: true, error: null }
      : { target, ok: false, error: `HTTP ${response.status}` };
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = `${(err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ""}`;
    return { target, ok: false, error: scrub(why, [url]) };
  }
}

/** One message to every target; never throws. */
export async function sendAlert(targets: AlertTargets, m: AlertMessage): Promise<AlertDelivery[]> {
  const deliveries: Promise<AlertDelivery>[] = [];
  if (targets.apprise.length) {
    deliveries.push(sendApprise(targets, m));
  }
  if (targets.webhook) {
    deliveries.push(sendWebhook(targets.webhook, m));
  }
  return Promise.all(deliveries);
}
