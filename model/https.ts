/**
 * How a stack is reached, decided once for the program, edms-ops and the policy pack: where TLS ends, which
 * host address the published ports bind to, what Django is told of it, and the Host header the stack's own
 * probes send. Pure; no @pulumi import.
 */
import { DEFAULT_UPSTREAM_BIND } from "./config/https";
import type { Settings } from "./settings";

/** `proxy`: TLS ends at HAProxy (`edms:proxy.tls`); `upstream`: before the published port; `none`: plain HTTP. */
export type HttpsMode = "proxy" | "upstream" | "none";

export function httpsMode(settings: Pick<Settings, "proxy" | "tlsUpstream">): HttpsMode {
  if (settings.proxy.tls) {
    return "proxy";
  }
  return settings.tlsUpstream ? "upstream" : "none";
}

/** The host address every published port binds to (Docker's `ports[].ip`); undefined: every interface. */
export function publishAddress(
  settings: Pick<Settings, "bindAddress" | "tlsUpstream">,
): string | undefined {
  return settings.bindAddress ?? (settings.tlsUpstream ? DEFAULT_UPSTREAM_BIND : undefined);
}

export interface PublishedPort {
  readonly internal: number;
  readonly external: number;
  readonly ip?: string;
}

/**
 * One published port. `ip` only when an address is configured: a stack that sets none keeps exactly the
 * inputs it had (Docker's default, every interface), so an update does not replace its containers.
 */
export function publishedPort(
  settings: Pick<Settings, "bindAddress" | "tlsUpstream">,
  internal: number,
  external: number,
): PublishedPort {
  const ip = publishAddress(settings);
  return { internal, external, ...(ip ? { ip } : {}) };
}

/** The variable the app reads its ALLOWED_HOSTS from (comma-separated). */
export const ALLOWED_HOSTS_ENV = "DJANGO_ALLOWED_HOSTS";
/** Set to `1` when the stack serves HTTPS: secure cookies, X-Forwarded-Proto trusted (the sample app's settings.py). */
export const HTTPS_ENV = "EDMS_HTTPS";

/**
 * What Django is told of how it is reached: its allowed hosts when configured (else the app's own default),
 * and whether requests arrive over HTTPS. Neither is a secret.
 */
export function djangoHttpsEnvironment(
  settings: Pick<Settings, "proxy" | "tlsUpstream" | "django">,
): string[] {
  const hosts = settings.django?.allowedHosts;
  return [
    ...(hosts?.length ? [`${ALLOWED_HOSTS_ENV}=${hosts.join(",")}`] : []),
    ...(httpsMode(settings) === "none" ? [] : [`${HTTPS_ENV}=1`]),
  ];
}

/**
 * The Host header edms-ops' HTTP probes send (health, the switch): the first configured allowed host, as a
 * name (`.example.com` matches `example.com` too), so the app answers them as it answers users. Undefined:
 * no hosts configured, the app accepts what the probe's URL names.
 */
export function probeHost(settings: Pick<Settings, "django">): string | undefined {
  const host = settings.django?.allowedHosts?.find((h) => h !== "*");
  return host?.replace(/^\./, "");
}

/** Where the stack publishes the app on the Docker host (the `url` output): what a TLS upstream points at. */
export function publishedUrl(
  settings: Pick<Settings, "proxy" | "httpPort" | "bindAddress" | "tlsUpstream">,
): string {
  const address = publishAddress(settings);
  const host =
    address === undefined ? "localhost" : address.includes(":") ? `[${address}]` : address;
  const tls = settings.proxy.tls;
  return tls ? `https://${host}:${tls.port}/` : `http://${host}:${settings.httpPort}/`;
}
