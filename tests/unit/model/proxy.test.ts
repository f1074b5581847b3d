import { expect } from "chai";
import { validateSettings } from "../../../model/settings";
import { containerReplacement } from "../../../model/protection";
import {
  httpFrontendRedirects,
  liveBackend,
  parseLiveBackend,
  proxyConfig,
  webContainerName,
} from "../../../model/proxy";

const settings = (proxy?: unknown, extra: Record<string, unknown> = {}) =>
  validateSettings("staging", {
    environment: "staging",
    version: "2.0.0",
    namePrefix: "edms-staging",
    ...(proxy ? { proxy } : {}),
    ...extra,
  });

/** The lines of one `frontend <name>` section of haproxy.cfg, trimmed. */
const frontend = (config: string, name: string) =>
  (new RegExp(`^frontend ${name}\n((?:    .*\n)*)`, "m").exec(config)?.[1] ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);

describe("proxy decisions", function () {
  it("names web per release behind the proxy, with one fixed name without it", function () {
    expect(webContainerName(settings())).to.equal("edms-staging-web-2.0.0");
    expect(webContainerName(settings(), "1.0.0")).to.equal("edms-staging-web-1.0.0");
    expect(webContainerName(settings({ enabled: false }))).to.equal("edms-staging-web");
  });

  it("live.cfg names the container it routes to and the release header; the placeholder answers 503", function () {
    const live = { container: "edms-staging-web-2.0.0", version: "2.0.0" };
    const text = liveBackend(live);
    expect(text).to.contain("server edms-staging-web-2.0.0 edms-staging-web-2.0.0:8000");
    expect(text).to.contain("set-header X-Edms-Release 2.0.0");
    expect(parseLiveBackend(text)).to.deep.equal(live);
    expect(liveBackend(null)).to.contain("return status 503");
    expect(parseLiveBackend(liveBackend(null))).to.equal(null);
    expect(parseLiveBackend("backend web\n    server x x:8000\n")).to.equal(null);
  });

  it("haproxy.cfg binds HTTPS only with TLS, and overwrites X-Forwarded-Proto where the proxy decides it", function () {
    const plain = proxyConfig(settings());
    expect(plain).not.to.contain("ssl crt");
    expect(plain).to.contain("http-request set-header X-Forwarded-Proto http");
    const tls = proxyConfig(settings({ tls: { certificateFile: "c", keyFile: "k" } }));
    expect(tls).to.match(/bind :8443 ssl crt \/usr\/local\/etc\/haproxy\/tls\/edms\.pem/);
    expect(tls).to.contain("http-request set-header X-Forwarded-Proto https");
  });

  it("with TLS the plain port serves nothing: every request is redirected to HTTPS on the TLS port", function () {
    const on443 = proxyConfig(settings({ tls: { certificateFile: "c", keyFile: "k" } }));
    expect(frontend(on443, "http")).to.deep.equal([
      "bind :8080",
      "http-request replace-value Host ^(.*):[0-9]+$ \\1",
      "http-request redirect scheme https code 301",
    ]);
    expect(httpFrontendRedirects(on443)).to.equal(true);
    // A TLS port other than HTTPS' default is named in the redirect's Host.
    const on8443 = proxyConfig(
      settings({ tls: { port: 8443, certificateFile: "c", keyFile: "k" } }),
    );
    expect(frontend(on8443, "http")).to.include("http-request replace-value Host ^(.*)$ \\1:8443");
    expect(frontend(on8443, "https")).to.include("default_backend web");
    expect(httpFrontendRedirects(on8443)).to.equal(true);
  });

  it("without TLS at the proxy the plain port serves the app, passing the upstream's X-Forwarded-Proto on when TLS ends there", function () {
    const plain = proxyConfig(settings());
    expect(frontend(plain, "http")).to.deep.equal([
      "bind :8080",
      "http-request set-header X-Forwarded-Proto http",
      "default_backend web",
    ]);
    expect(httpFrontendRedirects(plain)).to.equal(false);
    const upstream = proxyConfig(settings(undefined, { tlsUpstream: true }));
    expect(frontend(upstream, "http")).to.deep.equal(["bind :8080", "default_backend web"]);
    expect(upstream).not.to.contain("frontend https");
    expect(httpFrontendRedirects(upstream)).to.equal(false);
    // A stack that sets neither keeps the haproxy.cfg it had: its proxy is not replaced by the update.
    expect(proxyConfig(settings(undefined, { bindAddress: "127.0.0.1" }))).to.equal(plain);
  });

  it("a redirect that still has a backend to serve, or sits in another frontend, does not count", function () {
    const tls = proxyConfig(settings({ tls: { certificateFile: "c", keyFile: "k" } }));
    expect(
      httpFrontendRedirects(tls.replace("code 301\n", "code 301\n    default_backend web\n")),
    ).to.equal(false);
    expect(
      httpFrontendRedirects(
        "frontend http\n    bind :8080\n    default_backend web\nfrontend other\n    http-request redirect scheme https code 301\n",
      ),
    ).to.equal(false);
  });

  it("only web behind the proxy is per release; every fixed name is replaced delete-first", function () {
    expect(containerReplacement("web", true).perRelease).to.equal(true);
    expect(containerReplacement("web", false).perRelease).to.equal(false);
    for (const role of ["postgres", "redis", "proxy", "worker", "web"] as const) {
      expect(containerReplacement(role, true).deleteBeforeReplace, role).to.equal(true);
      expect(containerReplacement(role, true).perRelease, role).to.equal(role === "web");
    }
    expect(containerReplacement("worker", true).destroyGraceSeconds).to.equal(60);
  });
});
