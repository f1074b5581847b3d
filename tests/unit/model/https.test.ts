/** How a stack is reached: HTTPS on production, bind addresses, Django's hosts (model/config/https.ts). */
import { expect } from "chai";
import {
  djangoHttpsEnvironment,
  httpsMode,
  probeHost,
  publishedPort,
  publishedUrl,
} from "../../../model/https";
import { ConfigError, validateSettings } from "../../../model/settings";

const TLS = { tls: { certificateFile: "certs/edms.crt", keyFile: "certs/edms.key" } };
const HOSTS = { django: { allowedHosts: ["edms.example.com"] } };

function problemsOf(raw: Record<string, unknown>): string[] {
  try {
    validateSettings("s", { version: "1.0.0", ...raw });
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  return [];
}

describe("HTTPS settings validation", function () {
  describe("production serves HTTPS one way, and names its hosts", function () {
    const production = { environment: "production", ...HOSTS };

    it("accepts TLS at the proxy, or TLS ended upstream (as text, the way Pulumi hands it over)", function () {
      expect(problemsOf({ ...production, proxy: TLS })).to.deep.equal([]);
      expect(problemsOf({ ...production, tlsUpstream: true })).to.deep.equal([]);
      expect(problemsOf({ ...production, tlsUpstream: "true" })).to.deep.equal([]);
      const s = validateSettings("p", { ...production, version: "1", tlsUpstream: "true" });
      expect(s.tlsUpstream).to.equal(true);
    });

    it("refuses neither, naming both keys and how to set each", function () {
      for (const neither of [{}, { tlsUpstream: false }, { tlsUpstream: "false" }]) {
        const problems = problemsOf({ ...production, ...neither });
        expect(problems).to.have.length(1);
        expect(problems[0]).to.match(
          /^Production serves HTTPS only: `edms:proxy\.tls` or `edms:tlsUpstream` is required\. Terminate TLS at the proxy with `edms:proxy\.tls: \{port: 443, .*set `edms:tlsUpstream: true` \(the ports then bind to `edms:bindAddress`, default 127\.0\.0\.1\)\.$/,
        );
      }
    });

    it("refuses both, in every environment: TLS ends in one place", function () {
      for (const environment of ["production", "staging", "dev"]) {
        expect(
          problemsOf({ ...HOSTS, environment, proxy: TLS, tlsUpstream: true }),
          environment,
        ).to.deep.equal([
          "`edms:proxy.tls` and `edms:tlsUpstream` exclude each other: TLS ends either at the proxy or upstream. Remove one of them.",
        ]);
      }
    });

    it("refuses production without allowed hosts, with an empty list, or with *", function () {
      const https = { environment: "production", tlsUpstream: true };
      expect(problemsOf(https).join()).to.match(
        /^`edms:django\.allowedHosts` is required on production: .*pulumi config set --path 'edms:django\.allowedHosts\[0\]' edms\.example\.com/,
      );
      expect(problemsOf({ ...https, django: {} }).join()).to.match(/is required on production/);
      expect(problemsOf({ ...https, django: { allowedHosts: [] } }).join()).to.match(
        /is required on production/,
      );
      expect(
        problemsOf({ ...https, django: { allowedHosts: ["edms.example.com", "*"] } }),
      ).to.deep.equal([
        "`edms:django.allowedHosts` cannot hold `*` on production: any Host header would be accepted (and written into links and redirects). List the host names users reach the stack by.",
      ]);
    });

    it("reports a malformed key once, by its own check, not again as missing", function () {
      const problems = problemsOf({
        environment: "production",
        tlsUpstream: "yes",
        django: { allowedHosts: "edms.example.com" },
      });
      expect(problems).to.deep.equal([
        "`edms:tlsUpstream` must be true or false: `pulumi config set edms:tlsUpstream true`, or remove it and set `edms:proxy.tls`.",
        "`edms:django` allowedHosts must be a list of host names: e.g. `{allowedHosts: [edms.example.com]}`.",
      ]);
    });
  });

  describe("dev and staging", function () {
    it("need neither HTTPS nor allowed hosts, and keep every setting unset", function () {
      for (const environment of ["dev", "staging"]) {
        const s = validateSettings("s", { environment, version: "1" });
        expect(s.bindAddress, environment).to.equal(undefined);
        expect(s.tlsUpstream, environment).to.equal(undefined);
        expect(s.django, environment).to.equal(undefined);
        // Unset keys leave the settings JSON (the scheduler's env, the hooks' triggers) as it was.
        expect(JSON.stringify(s)).not.to.match(/bindAddress|tlsUpstream|django/);
      }
    });

    it("accept * and subdomain patterns as allowed hosts", function () {
      const s = validateSettings("s", {
        environment: "staging",
        version: "1",
        django: { allowedHosts: ["*", ".example.org", "10.0.0.5", "[::1]", " edms.test "] },
      });
      expect(s.django?.allowedHosts).to.deep.equal([
        "*",
        ".example.org",
        "10.0.0.5",
        "[::1]",
        "edms.test",
      ]);
    });

    it("refuse host names Django could not match, or that would split the variable", function () {
      for (const bad of [
        "edms.example.com,evil.com",
        "https://edms.example.com",
        "*.example.com",
        "",
      ]) {
        expect(
          problemsOf({ environment: "staging", django: { allowedHosts: [bad] } }).join(),
          bad,
        ).to.match(/`edms:django` allowedHosts must be host names such as `edms\.example\.com`/);
      }
      expect(problemsOf({ environment: "staging", django: { hosts: ["a"] } }).join()).to.match(
        /^`edms:django` .*hosts.*: e\.g\. `\{allowedHosts: \[edms\.example\.com\]\}`\.$/,
      );
    });
  });

  describe("edms:bindAddress", function () {
    it("takes an IPv4 or IPv6 address of the host", function () {
      for (const address of ["127.0.0.1", "10.1.2.3", "::1"]) {
        const s = validateSettings("s", { environment: "dev", version: "1", bindAddress: address });
        expect(s.bindAddress).to.equal(address);
      }
    });

    it("refuses a host name or anything else, naming the fix", function () {
      for (const bad of ["localhost", "127.0.0.1:8000", "0.0.0.0/0"]) {
        expect(problemsOf({ environment: "dev", bindAddress: bad })).to.deep.equal([
          "`edms:bindAddress` must be an IPv4 or IPv6 address: give an IP address of the Docker host, e.g. `127.0.0.1`.",
        ]);
      }
    });

    it("refuses every interface when TLS ends upstream: the plain port would be open", function () {
      for (const wildcard of ["0.0.0.0", "::"]) {
        expect(
          problemsOf({ environment: "staging", tlsUpstream: true, bindAddress: wildcard }).join(),
        ).to.match(
          new RegExp(
            `^\`edms:bindAddress: ${wildcard}\` publishes the plain-HTTP port on every interface, though \`edms:tlsUpstream\` says TLS ends upstream\\. .*remove \`bindAddress\` \\(default 127\\.0\\.0\\.1\\)`,
          ),
        );
      }
      // Without the upstream mode it is only a spelled-out default.
      expect(problemsOf({ environment: "staging", bindAddress: "0.0.0.0" })).to.deep.equal([]);
    });
  });
});

describe("how a stack is reached (model/https.ts)", function () {
  const settings = (raw: Record<string, unknown>) =>
    validateSettings("s", { environment: "staging", version: "1", ...raw });

  it("binds published ports only where configured: the upstream mode's default is 127.0.0.1", function () {
    expect(publishedPort(settings({}), 8080, 8000)).to.deep.equal({
      internal: 8080,
      external: 8000,
    });
    expect(publishedPort(settings({ tlsUpstream: true }), 8080, 8000)).to.deep.equal({
      internal: 8080,
      external: 8000,
      ip: "127.0.0.1",
    });
    expect(
      publishedPort(settings({ tlsUpstream: true, bindAddress: "10.0.0.5" }), 1, 2).ip,
    ).to.equal("10.0.0.5");
    expect(publishedPort(settings({ bindAddress: "::1", proxy: TLS }), 1, 2).ip).to.equal("::1");
  });

  it("tells Django its hosts when configured and that it is served over HTTPS in either mode", function () {
    expect(djangoHttpsEnvironment(settings({}))).to.deep.equal([]);
    expect(
      djangoHttpsEnvironment(
        settings({ django: { allowedHosts: ["edms.example.com", ".example.org"] } }),
      ),
    ).to.deep.equal(["DJANGO_ALLOWED_HOSTS=edms.example.com,.example.org"]);
    expect(djangoHttpsEnvironment(settings({ tlsUpstream: true, ...HOSTS }))).to.deep.equal([
      "DJANGO_ALLOWED_HOSTS=edms.example.com",
      "EDMS_HTTPS=1",
    ]);
    expect(djangoHttpsEnvironment(settings({ proxy: TLS }))).to.deep.equal(["EDMS_HTTPS=1"]);
    expect(httpsMode(settings({ proxy: TLS }))).to.equal("proxy");
    expect(httpsMode(settings({ tlsUpstream: true }))).to.equal("upstream");
    expect(httpsMode(settings({ tlsUpstream: false }))).to.equal("none");
  });

  it("probes with the first allowed host as a name, none without hosts", function () {
    expect(probeHost(settings({}))).to.equal(undefined);
    expect(probeHost(settings({ django: { allowedHosts: ["*", ".example.org", "b"] } }))).to.equal(
      "example.org",
    );
    expect(probeHost(settings(HOSTS))).to.equal("edms.example.com");
  });

  it("names where the app is published, at the bound address", function () {
    expect(publishedUrl(settings({}))).to.equal("http://localhost:8000/");
    expect(publishedUrl(settings({ tlsUpstream: true }))).to.equal("http://127.0.0.1:8000/");
    expect(publishedUrl(settings({ proxy: TLS }))).to.equal("https://localhost:443/");
    expect(publishedUrl(settings({ proxy: TLS, bindAddress: "::1" }))).to.equal(
      "https://[::1]:443/",
    );
  });
});
