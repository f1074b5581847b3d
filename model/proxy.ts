/**
 * What the proxy container, the deploy's switch hook and edms-ops share: names, paths and the HAProxy
 * configuration text. Pure and free of @pulumi imports, so edms-ops uses exactly what the program deploys.
 *
 * The proxy loads two files: haproxy.cfg (fixed per stack, uploaded by the program) and live.cfg (which release
 * is live, rewritten by `edms-ops switch`). A switch is a seamless reload (SIGUSR2 to the master, which hands
 * the listening sockets to the new worker): the old worker finishes its in-flight requests against the old web,
 * new connections go to the new one, and no connection is refused in between.
 */
import type { Settings } from "./settings";

export const PROXY_HTTP_PORT = 8080;
export const PROXY_HTTPS_PORT = 8443;
export const PROXY_CONFIG_DIR = "/usr/local/etc/haproxy";
export const PROXY_MAIN_CONFIG = `${PROXY_CONFIG_DIR}/haproxy.cfg`;
export const PROXY_LIVE_CONFIG = `${PROXY_CONFIG_DIR}/live.cfg`;
export const PROXY_TLS_PEM = `${PROXY_CONFIG_DIR}/tls/edms.pem`;
/** Upper bound for an old proxy worker to finish in-flight requests after a switch (`hard-stop-after`). */
export const PROXY_DRAIN_SECONDS = 60;
/** The port gunicorn listens on inside a web container. */
export const WEB_INTERNAL_PORT = 8000;
/** Response header naming the release whose web container answered (set by the proxy per live backend). */
export const RELEASE_HEADER = "X-Edms-Release";

/** Master-worker mode (-W) is what makes a reload seamless; -db keeps it in the foreground for Docker. */
export const PROXY_COMMAND = [
  "haproxy",
  "-W",
  "-db",
  "-f",
  PROXY_MAIN_CONFIG,
  "-f",
  PROXY_LIVE_CONFIG,
];

/** With the proxy, one web container per release (they run side by side during a switch); without, one name. */
export function webContainerName(settings: Settings, version = settings.version): string {
  return settings.proxy.enabled
    ? `${settings.names.webContainer}-${version}`
    : settings.names.webContainer;
}

/** haproxy.cfg: frontends on the published ports, nothing release-specific (so it never changes on update). */
export function proxyConfig(settings: Settings): string {
  const tls = settings.proxy.tls;
  return [
    "# Written by edms-deploy (model/proxy.ts). The live release is in live.cfg (edms-ops switch).",
    "global",
    // Bounds the drain: an old worker still holding connections this long after a switch is stopped.
    `    hard-stop-after ${PROXY_DRAIN_SECONDS}s`,
    "    log stdout format raw local0 notice",
    "defaults",
    "    mode http",
    "    log global",
    "    timeout connect 5s",
    "    timeout client 60s",
    "    timeout server 120s",
    "    timeout http-request 30s",
    "    timeout http-keep-alive 10s",
    "    retries 3",
    "    option redispatch",
    "    option forwardfor",
    // During a switch the old worker would close idle keep-alive connections at once, racing a client that
    // is just sending on one; instead it answers one more request with `Connection: close`.
    "    option idle-close-on-response",
    // Docker's embedded DNS: a web container that restarts with another address is found again.
    "resolvers docker",
    "    nameserver dns 127.0.0.11:53",
    "    hold valid 10s",
    ...httpFrontend(settings),
    ...(tls
      ? [
          "frontend https",
          `    bind :${PROXY_HTTPS_PORT} ssl crt ${PROXY_TLS_PEM} alpn http/1.1`,
          "    http-request set-header X-Forwarded-Proto https",
          '    http-response set-header Strict-Transport-Security "max-age=31536000"',
          "    default_backend web",
        ]
      : []),
    "",
  ].join("\n");
}

/** The rule that turns the plain-HTTP frontend into a redirect (the policy pack looks for it). */
export const HTTPS_REDIRECT = "http-request redirect scheme https code 301";

/**
 * The frontend on `edms:httpPort`. With TLS at the proxy it serves nothing: every request is redirected to
 * HTTPS on the published TLS port. With TLS ended upstream it serves the app and passes on the upstream's
 * X-Forwarded-Proto (only the upstream reaches the bound port). Otherwise X-Forwarded-Proto is `http`.
 */
function httpFrontend(settings: Settings): string[] {
  const tls = settings.proxy.tls;
  const frontend = ["frontend http", `    bind :${PROXY_HTTP_PORT}`];
  if (tls) {
    return [
      ...frontend,
      // `redirect scheme` keeps the Host header as sent, port included: the HTTP port goes, and the TLS
      // port is named unless it is HTTPS' default.
      "    http-request replace-value Host ^(.*):[0-9]+$ \\1",
      ...(tls.port === 443 ? [] : [`    http-request replace-value Host ^(.*)$ \\1:${tls.port}`]),
      `    ${HTTPS_REDIRECT}`,
    ];
  }
  if (settings.tlsUpstream) {
    return [
      ...frontend,
      // Set by the TLS-terminating upstream, the only client of the bound port; Django trusts it.
      "    default_backend web",
    ];
  }
  return [
    ...frontend,
    // Overwritten, never trusted from the client: Django decides secure cookies/redirects on it.
    "    http-request set-header X-Forwarded-Proto http",
    "    default_backend web",
  ];
}

/** True when haproxy.cfg's `frontend http` redirects every request to HTTPS and has no backend to serve. */
export function httpFrontendRedirects(config: string): boolean {
  const section = /^frontend http\n((?:[ \t]+.*\n?)*)/m.exec(config)?.[1] ?? "";
  const rules = section.split("\n").map((line) => line.trim());
  return (
    rules.includes(HTTPS_REDIRECT) &&
    !rules.some((rule) => /^(default_backend|use_backend)\b/.test(rule))
  );
}

export interface LiveRelease {
  readonly container: string;
  readonly version: string;
}

/** live.cfg: the `web` backend pointing at one release's web container, or answering 503 before the first. */
export function liveBackend(live: LiveRelease | null): string {
  if (!live) {
    return [
      "# live: none",
      "backend web",
      '    http-request return status 503 content-type text/plain string "No release is live yet."',
      "",
    ].join("\n");
  }
  return [
    `# live: ${live.container} ${live.version}`,
    "backend web",
    `    http-response set-header ${RELEASE_HEADER} ${live.version}`,
    `    server ${live.container} ${live.container}:${WEB_INTERNAL_PORT} resolvers docker`,
    "",
  ].join("\n");
}

/** Which release a live.cfg points at; null for the placeholder or anything not written by liveBackend. */
export function parseLiveBackend(text: string): LiveRelease | null {
  const match = /^# live: (\S+) (\S+)$/m.exec(text);
  return match ? { container: match[1], version: match[2] } : null;
}
