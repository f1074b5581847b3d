/**
 * `edms:alerts`: where the scheduler on the Docker host sends alerts (Apprise URLs, a JSON webhook) and the
 * thresholds of the off-host lag alert. Target URLs hold tokens, so the stack file must keep them encrypted;
 * the parsed settings (which travel as plain JSON into hooks and the scheduler's env) keep a placeholder
 * for each. alertSecrets() hands the plain URLs to Pulumi as secrets, uploaded into the scheduler as files.
 */
import { z } from "zod";
import { integer, maybeSecret, parseJsonish, setting } from "./fields";

/** What Settings hold in place of a target URL. */
export const SECRET_PLACEHOLDER = "(secret)";

export const ALERT_DEFAULTS = { offsiteLagBackups: 3, offsiteLagHours: 24 } as const;

/** A value the stack file holds in plain text (a `{secure: …}` value passes). */
const plainText = (v: unknown) => typeof v === "string";

const apprise = z
  .array(maybeSecret("an Apprise URL (alerts.apprise)"), {
    error: "alerts.apprise must be a list of Apprise URLs",
  })
  .superRefine((urls, ctx) => {
    urls.forEach((url, i) => {
      if (plainText(url)) {
        ctx.addIssue({
          code: "custom",
          message: `alerts.apprise[${i}] holds a notification URL in plain text (it carries a token): set it with \`pulumi config set --secret --path 'edms:alerts.apprise[${i}]' <url>\``,
        });
      }
    });
  });

const webhook = maybeSecret("an http(s) URL (alerts.webhook)").refine(
  (v) => !plainText(v),
  "alerts.webhook holds a URL in plain text (it carries a token): set it with `pulumi config set --secret --path edms:alerts.webhook <url>`",
);

export const alertsSchema = z
  .object({
    apprise: setting(apprise.optional(), {
      description:
        "Apprise URLs (e-mail, Slack, Teams, Matrix, ntfy, PagerDuty, …), each set with `--secret`: `pulumi config set --secret --path 'edms:alerts.apprise[0]' 'slack://…'`.",
      secret: true,
    }),
    webhook: setting(webhook.optional(), {
      description:
        "An http(s) URL that gets each alert as a JSON POST `{stack, environment, condition, state, summary, detail, next, at}`; set with `--secret`.",
      secret: true,
    }),
    offsiteLagBackups: setting(
      integer
        .pipe(z.number().int().min(1, "offsiteLagBackups must be at least 1"))
        .default(ALERT_DEFAULTS.offsiteLagBackups),
      {
        description:
          "Alert when more than this many local backups have no off-host copy (`edms:backup.offsite`).",
      },
    ),
    offsiteLagHours: setting(
      z
        .union(
          [
            z.number(),
            z
              .string()
              .regex(/^\d+(\.\d+)?$/)
              .transform(Number),
          ],
          {
            error: "offsiteLagHours must be a number of hours",
          },
        )
        .pipe(z.number().positive("offsiteLagHours must be more than 0"))
        .default(ALERT_DEFAULTS.offsiteLagHours),
      {
        description:
          "Alert when the oldest local backup without an off-host copy is older than this many hours.",
      },
    ),
  })
  .strict()
  // Settings travel as plain JSON (hooks, the scheduler's env): the targets are kept as placeholders, so
  // their number shows and their URLs never do.
  .transform(({ apprise, webhook, ...rest }) => ({
    ...(apprise ? { apprise: apprise.map(() => SECRET_PLACEHOLDER) } : {}),
    ...(webhook !== undefined ? { webhook: SECRET_PLACEHOLDER } : {}),
    ...rest,
  }));

export const ALERTS_FIX =
  "e.g. `pulumi config set --secret --path 'edms:alerts.apprise[0]' 'ntfy://ntfy.example.com/edms-prod'` and `pulumi config set --secret --path edms:alerts.webhook https://hooks.example.com/…`; thresholds `offsiteLagBackups: 3, offsiteLagHours: 24`";

/** Alert targets as plain (decrypted) values: only ever handed to Pulumi as secrets. */
export interface AlertSecrets {
  readonly apprise: string[];
  readonly webhook?: string;
}

/** The targets of an already validated `edms:alerts` value, with plain values; undefined when none. */
export function alertSecrets(alerts: unknown): AlertSecrets | undefined {
  const value = parseJsonish(alerts) as { apprise?: unknown; webhook?: unknown } | undefined;
  if (!value || typeof value !== "object") {
    return undefined;
  }
  const appriseUrls = Array.isArray(value.apprise)
    ? value.apprise.filter((u): u is string => typeof u === "string")
    : [];
  const hook = typeof value.webhook === "string" ? value.webhook : undefined;
  if (!appriseUrls.length && hook === undefined) {
    return undefined;
  }
  return { apprise: appriseUrls, ...(hook === undefined ? {} : { webhook: hook }) };
}

/** `edms:alerts` with its targets as the stack file keeps secrets, for validating a decrypted value. */
export function maskAlertTargets(alerts: unknown): unknown {
  const value = parseJsonish(alerts) as { apprise?: unknown; webhook?: unknown } | undefined;
  if (!value || typeof value !== "object") {
    return alerts;
  }
  const masked = { secure: "(decrypted by pulumi)" };
  return {
    ...value,
    ...(Array.isArray(value.apprise) ? { apprise: value.apprise.map(() => masked) } : {}),
    ...(value.webhook !== undefined ? { webhook: masked } : {}),
  };
}

/**
 * A target URL as evidence and alerts may show it: scheme and host only, never user info, port, path or
 * query (the token is in one of them), e.g. `slack://…`, `https://hooks.example.com/…`.
 */
export function redactTarget(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(url.trim());
  if (!match) {
    return "(unreadable URL)";
  }
  const scheme = match[1].toLowerCase();
  const authority = match[2];
  // Many Apprise schemes put the token where a host would be (slack://T/B/C, tgram://bot-token/…): a host
  // is shown only when it looks like one (has a dot or is localhost) and has no user info.
  const host = authority.includes("@")
    ? authority.slice(authority.lastIndexOf("@") + 1)
    : authority;
  const hostname = host.replace(/:\d+$/, "");
  const looksLikeHost = /^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+|\[[0-9a-f:]+\])$/i.test(hostname);
  return looksLikeHost && !/^\d+$/.test(hostname) ? `${scheme}://${hostname}/…` : `${scheme}://…`;
}

/** How many targets a stack has (Apprise URLs and the webhook). */
export function alertTargetCount(alerts: {
  apprise?: readonly unknown[];
  webhook?: unknown;
}): number {
  return (alerts.apprise?.length ?? 0) + (alerts.webhook === undefined ? 0 : 1);
}
