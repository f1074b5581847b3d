import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { secretFile, stackContainer } from "./container";
import { containerReplacement } from "../model/protection";
import { publishedPort } from "../model/https";
import {
  liveBackend,
  PROXY_COMMAND,
  PROXY_HTTP_PORT,
  PROXY_HTTPS_PORT,
  PROXY_LIVE_CONFIG,
  PROXY_MAIN_CONFIG,
  PROXY_TLS_PEM,
  proxyConfig,
} from "../model/proxy";

export interface EdmsProxyArgs {
  readonly settings: Settings;
  /** The stack's front network: the proxy is never on the data network, so it reaches no datastore. */
  readonly network: pulumi.Input<string>;
  /** Certificate chain + key as one PEM (secret); required when `edms:proxy.tls` is set. */
  readonly tlsPem?: pulumi.Input<string>;
  /** Must have run before the container is created (the port takeover from a deployment without the proxy). */
  readonly after?: pulumi.Resource[];
}

/**
 * The reverse proxy (HAProxy) that owns the published port(s). Its inputs hold nothing release-specific, so an
 * update never replaces it: which web container is live is switched at run time by `edms-ops switch`.
 * It starts with a placeholder live.cfg that answers 503 until the first switch.
 */
export class EdmsProxy extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: EdmsProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:EdmsProxy", name, {}, opts);
    const { settings } = args;
    const tls = settings.proxy.tls;
    if (tls && args.tlsPem === undefined) {
      throw new pulumi.ResourceError(
        "`edms:proxy.tls` is set but no certificate was read. Set `certificateFile` and `keyFile` to PEM files.",
        this,
      );
    }
    const { destroyGraceSeconds, deleteBeforeReplace } = containerReplacement("proxy", true);
    this.container = stackContainer(
      name,
      { settings, role: "proxy", networks: [{ name: args.network }] },
      {
        name: settings.names.proxyContainer,
        image: settings.proxy.image,
        command: PROXY_COMMAND,
        uploads: [
          secretFile(PROXY_MAIN_CONFIG, proxyConfig(settings)),
          secretFile(PROXY_LIVE_CONFIG, liveBackend(null), "0644"),
          // HAProxy runs unprivileged in the official image and reads the key itself, as the database and
          // Django secrets are read inside their containers: a file, never env or argv.
          ...(tls && args.tlsPem !== undefined ? [secretFile(PROXY_TLS_PEM, args.tlsPem)] : []),
        ],
        // On the configured host address only (edms:bindAddress, 127.0.0.1 when TLS ends upstream).
        ports: [
          publishedPort(settings, PROXY_HTTP_PORT, settings.httpPort),
          ...(tls ? [publishedPort(settings, PROXY_HTTPS_PORT, tls.port)] : []),
        ],
        destroyGraceSeconds,
      },
      { parent: this, deleteBeforeReplace, dependsOn: args.after ?? [] },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
