/**
 * How a stack is reached: the host address its published ports bind to, where TLS ends (at the proxy,
 * `edms:proxy.tls`, or upstream, `edms:tlsUpstream`), and the host names Django answers to
 * (`edms:django`). Production must serve HTTPS one way or the other, and name its hosts.
 */
import { z } from "zod";
import { setting } from "./fields";

/** Where the published ports bind in the "TLS ends upstream" mode unless `edms:bindAddress` says otherwise. */
export const DEFAULT_UPSTREAM_BIND = "127.0.0.1";

/** Addresses that mean "every interface" to Docker: nothing is kept off the network by them. */
export const WILDCARD_ADDRESSES: readonly string[] = ["0.0.0.0", "::"];

// Pulumi hands a top-level value over as text (`pulumi config set edms:tlsUpstream true`).
const flag = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")], {
  error: "must be true or false",
});

export const bindAddressSchema = setting(
  z.union([z.ipv4(), z.ipv6()], { error: "must be an IPv4 or IPv6 address" }).optional(),
  {
    description:
      "Host address the published ports (`edms:httpPort`, `edms:proxy.tls.port`) bind to (Docker's `ports[].ip`), e.g. `127.0.0.1` or a private interface's address. Unset: every interface, or `127.0.0.1` with `edms:tlsUpstream`. Docker's published ports bypass host firewalls such as ufw, so this is what keeps a port off a network.",
    fix: "give an IP address of the Docker host, e.g. `127.0.0.1`",
  },
);

export const tlsUpstreamSchema = setting(flag.optional(), {
  description:
    "TLS ends upstream: a TLS-terminating proxy or load balancer on the host (or its private network) forwards to `edms:httpPort`, which then binds to `edms:bindAddress` (default 127.0.0.1) only, never to every interface. The upstream must set `X-Forwarded-Proto: https` (overwriting any the client sent); the proxy passes it to Django, which then marks its cookies secure. Excludes `edms:proxy.tls`.",
  production: "this or `edms:proxy.tls` is required (exactly one): production serves HTTPS only",
  fix: "`pulumi config set edms:tlsUpstream true`, or remove it and set `edms:proxy.tls`",
});

// What Django accepts in ALLOWED_HOSTS: a name (a leading dot matches its subdomains too), an IPv4 address,
// a bracketed IPv6 address, or `*`. No commas: the list reaches the app as one comma-separated variable.
const LABEL = "[a-z0-9]([a-z0-9-]*[a-z0-9])?";
const HOST = new RegExp(`^(\\*|\\.?${LABEL}(\\.${LABEL})*|\\[[0-9a-f:.]+\\])$`, "i");

const django = z
  .object({
    allowedHosts: setting(
      z
        .array(
          z
            .string({ error: "allowedHosts must all be host names" })
            .trim()
            .regex(HOST, "allowedHosts must be host names such as `edms.example.com`"),
          { error: "allowedHosts must be a list of host names" },
        )
        .optional(),
      {
        description:
          "Host names the app answers to (Django's ALLOWED_HOSTS, as `DJANGO_ALLOWED_HOSTS`): `edms.example.com`, `.example.com` for a domain and its subdomains, an IP address. The first is the Host header edms-ops' health probes send. Unset: the app's own default.",
      },
    ),
  })
  .strict();

export const djangoSchema = setting(django.optional(), {
  description:
    "{allowedHosts: [host, …]}. What Django is told of how it is reached (environment variables, never secrets): `DJANGO_ALLOWED_HOSTS`, and `EDMS_HTTPS=1` when the stack serves HTTPS (`edms:proxy.tls` or `edms:tlsUpstream`): secure session and CSRF cookies, and `X-Forwarded-Proto` trusted as set by the proxy or the upstream.",
  production: "`allowedHosts` is required, non-empty and without `*`",
  fix: "e.g. `{allowedHosts: [edms.example.com]}`",
});

export type DjangoSettings = z.output<typeof django>;

interface HttpsValues {
  readonly environment?: unknown;
  readonly bindAddress?: string;
  readonly tlsUpstream?: boolean;
  readonly proxy?: { readonly tls?: unknown };
  readonly django?: DjangoSettings;
}

const PRODUCTION_HTTPS =
  "Terminate TLS at the proxy with `edms:proxy.tls: {port: 443, certificateFile: …, keyFile: …}` (plain HTTP is then redirected to HTTPS), or, behind a TLS-terminating proxy or load balancer on the host, set `edms:tlsUpstream: true` (the ports then bind to `edms:bindAddress`, default 127.0.0.1).";

/**
 * Exactly one way to HTTPS on production; an upstream never behind a port open on every interface. `invalid`
 * names the keys whose own check failed (reported there): they are not reported again as missing.
 */
export function httpsRuleProblems(values: HttpsValues, invalid: readonly string[] = []): string[] {
  const problems: string[] = [];
  const atProxy = values.proxy?.tls !== undefined;
  const upstream = values.tlsUpstream === true;
  if (atProxy && upstream) {
    problems.push(
      "`edms:proxy.tls` and `edms:tlsUpstream` exclude each other: TLS ends either at the proxy or upstream. Remove one of them.",
    );
  }
  if (upstream && values.bindAddress && WILDCARD_ADDRESSES.includes(values.bindAddress)) {
    problems.push(
      `\`edms:bindAddress: ${values.bindAddress}\` publishes the plain-HTTP port on every interface, though \`edms:tlsUpstream\` says TLS ends upstream. Bind it where only the upstream reaches it: remove \`bindAddress\` (default ${DEFAULT_UPSTREAM_BIND}) or give the host's private address.`,
    );
  }
  if (values.environment !== "production") {
    return problems;
  }
  if (!atProxy && !upstream && !invalid.includes("proxy") && !invalid.includes("tlsUpstream")) {
    problems.push(
      `Production serves HTTPS only: \`edms:proxy.tls\` or \`edms:tlsUpstream\` is required. ${PRODUCTION_HTTPS}`,
    );
  }
  const hosts = values.django?.allowedHosts ?? [];
  if (invalid.includes("django")) {
    return problems;
  }
  if (hosts.length === 0) {
    problems.push(
      "`edms:django.allowedHosts` is required on production: Django answers only to the host names it is given. Set them, e.g. `pulumi config set --path 'edms:django.allowedHosts[0]' edms.example.com`.",
    );
  } else if (hosts.includes("*")) {
    problems.push(
      "`edms:django.allowedHosts` cannot hold `*` on production: any Host header would be accepted (and written into links and redirects). List the host names users reach the stack by.",
    );
  }
  return problems;
}
