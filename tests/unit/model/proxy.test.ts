import { expect } from "chai";
import { validateSettings } from "../../../model/settings";
import { containerReplacement } from "../../../model/protection";
import { liveBackend, parseLiveBackend, proxyConfig, webContainerName } from "../../../model/proxy";

const settings = (proxy?: unknown) =>
  validateSettings("staging", {
    environment: "staging",
    version: "2.0.0",
    namePrefix: "edms-staging",
    ...(proxy ? { proxy } : {}),
  });

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

  it("haproxy.cfg binds HTTPS only with TLS, and always overwrites X-Forwarded-Proto", function () {
    const plain = proxyConfig(settings());
    expect(plain).not.to.contain("ssl crt");
    expect(plain).to.contain("http-request set-header X-Forwarded-Proto http");
    const tls = proxyConfig(settings({ tls: { certificateFile: "c", keyFile: "k" } }));
    expect(tls).to.match(/bind :8443 ssl crt \/usr\/local\/etc\/haproxy\/tls\/edms\.pem/);
    expect(tls).to.contain("http-request set-header X-Forwarded-Proto https");
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
