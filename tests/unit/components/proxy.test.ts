import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { mockImageId, ProgramRun, runProgram } from "../../harness/mocks";

const CONTAINER = "docker:index/container:Container";

describe("the program's proxy and TLS", function () {
  describe("proxy: zero-downtime release switch", function () {
    let v1: ProgramRun;
    let v2: ProgramRun;
    before(async function () {
      v1 = await runProgram({ stack: "staging", overrides: { "edms:version": "1.0.0" } });
      v2 = await runProgram({ stack: "staging", overrides: { "edms:version": "2.0.0" } });
      expect(v1.error).to.equal(undefined);
      expect(v2.error).to.equal(undefined);
    });
    const urns = (run: ProgramRun) => run.ofType(CONTAINER).map((c) => c.urn);

    it("a new release's web is a new resource and name: created beside the old one, which the engine deletes after the update", function () {
      expect(v1.byName("edms-web-1.0.0-container").inputs.name).to.equal("edms-staging-web-1.0.0");
      expect(v2.byName("edms-web-2.0.0-container").inputs.name).to.equal("edms-staging-web-2.0.0");
      // The only container URN that changes is web's: for the engine that is one create and, once the update
      // has succeeded, one delete of the resource the program no longer declares. No replace, so no pending
      // delete that a failed update would leave for the next `pulumi up` to run first.
      expect(urns(v1).filter((u) => !urns(v2).includes(u))).to.deep.equal([
        v1.byName("edms-web-1.0.0-container").urn,
      ]);
      expect(urns(v2).filter((u) => !urns(v1).includes(u))).to.deep.equal([
        v2.byName("edms-web-2.0.0-container").urn,
      ]);
    });

    it("the proxy's inputs do not change with the release, so an update never replaces it", function () {
      expect(v2.byName("edms-proxy-container").inputs).to.deep.equal(
        v1.byName("edms-proxy-container").inputs,
      );
      const cfg = v2.byName("edms-proxy-container").inputs.uploads[0].content as string;
      expect(cfg).to.contain("bind :8080").and.to.contain("hard-stop-after");
      expect(cfg).not.to.contain("2.0.0");
    });

    it("the worker keeps one fixed name, replaced delete-first: the old release's worker stops before the new one starts", function () {
      const w1 = v1.byName("edms-worker-container");
      const w2 = v2.byName("edms-worker-container");
      expect(w1.urn).to.equal(w2.urn);
      expect(w2.inputs.name).to.equal("edms-staging-worker");
      expect(w2.deleteBeforeReplace).to.equal(true);
      expect(w2.inputs.labels).to.deep.include({ label: "edms.version", value: "2.0.0" });
    });

    it("switches only after the new web exists and before the health gate; migrate still precedes both", function () {
      expect(v2.byName("proxySwitch").inputs.triggers.slice(0, 2)).to.deep.equal([
        "2.0.0",
        mockImageId("edms-sample/backend:2.0.0"),
      ]);
      expect(v2.byName("edms-web-2.0.0-container").dependsOnOnly).to.include("bootstrap");
      expect(v2.byName("healthGate").dependsOnOnly).to.include("proxySwitch");
      expect(v2.byName("recordDeployment").dependsOnOnly).to.include("healthGate");
    });
  });

  it("edms:proxy.enabled false: today's graph (one fixed web publishes the port, no proxy, no switch)", async function () {
    const run = await runProgram({
      stack: "staging",
      overrides: { "edms:proxy": { enabled: false } },
    });
    expect(run.error).to.equal(undefined);
    expect(run.ofType(CONTAINER).map((c) => c.inputs.name)).to.have.members(
      ["postgres", "redis", "web", "worker", "scheduler"].map((p) => `edms-staging-${p}`),
    );
    expect(run.byName("edms-web-container").inputs.ports).to.deep.equal([
      { internal: 8000, external: 8000 },
    ]);
    expect(run.resources.map((r) => r.name)).not.to.include("proxySwitch");
    expect(run.byName("healthGate").dependencies).to.include.members([
      "edms-web-container",
      "edms-worker-container",
    ]);
  });

  describe("HTTPS: where ports bind, what Django is told", function () {
    const envOf = (run: ProgramRun, name: string) =>
      (run.byName(name).inputs.envs as string[]).filter((e) =>
        /^(DJANGO_ALLOWED_HOSTS|EDMS_HTTPS)=/.test(e),
      );

    it("production ending TLS upstream: the proxy's port binds to loopback; web and worker know their hosts and HTTPS", async function () {
      const run = await runProgram({ stack: "production" });
      expect(run.error).to.equal(undefined);
      expect(run.byName("edms-proxy-container").inputs.ports).to.deep.equal([
        { internal: 8080, external: 8000, ip: "127.0.0.1" },
      ]);
      for (const name of ["edms-web-2.0.0-container", "edms-worker-container"]) {
        expect(envOf(run, name), name).to.deep.equal([
          "DJANGO_ALLOWED_HOSTS=edms.internal",
          "EDMS_HTTPS=1",
        ]);
      }
      expect(run.outputs.url).to.equal("http://127.0.0.1:8000/");
    });

    it("staging as it was: every interface, no allowed hosts or HTTPS variable", async function () {
      const run = await runProgram({ stack: "staging" });
      expect(run.byName("edms-proxy-container").inputs.ports).to.deep.equal([
        { internal: 8080, external: 8000 },
      ]);
      expect(envOf(run, "edms-worker-container")).to.deep.equal([]);
    });

    it("without the proxy the web container publishes on the configured address", async function () {
      const run = await runProgram({
        stack: "production",
        overrides: { "edms:proxy": { enabled: false }, "edms:bindAddress": "10.0.0.5" },
      });
      expect(run.error).to.equal(undefined);
      expect(run.byName("edms-web-container").inputs.ports).to.deep.equal([
        { internal: 8000, external: 8000, ip: "10.0.0.5" },
      ]);
    });
  });

  describe("proxy TLS", function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-tls-"));
    const cert = path.join(dir, "edms.crt");
    const key = path.join(dir, "edms.key");
    fs.writeFileSync(cert, "-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n");
    fs.writeFileSync(
      key,
      "-----BEGIN PRIVATE KEY-----\nmock-secret-key\n-----END PRIVATE KEY-----\n",
    );
    // Pulumi.production.yaml ends TLS upstream; here the proxy ends it instead.
    const tls = (extra: Record<string, unknown> = {}) => ({
      "edms:tlsUpstream": null,
      "edms:proxy": { tls: { port: 8443, certificateFile: cert, keyFile: key, ...extra } },
    });

    it("terminates TLS at the proxy: key and certificate uploaded as one secret file, never in env or argv", async function () {
      const run = await runProgram({ stack: "production", overrides: tls() });
      expect(run.error).to.equal(undefined);
      const proxy = run.byName("edms-proxy-container");
      expect(proxy.inputs.ports).to.deep.equal([
        { internal: 8080, external: 8000 },
        { internal: 8443, external: 8443 },
      ]);
      const i = proxy.inputs.uploads.findIndex((u: { file: string }) => u.file.endsWith(".pem"));
      expect(proxy.inputs.uploads[i].content).to.contain("BEGIN PRIVATE KEY");
      expect(proxy.secretInputs).to.include(`uploads.${i}.content`);
      expect(proxy.inputs.uploads[0].content).to.match(/bind :8443 ssl crt \S+\.pem/);
      for (const resource of run.resources) {
        expect(JSON.stringify(resource.inputs.envs ?? []), resource.name).not.to.contain("PRIVATE");
        expect(JSON.stringify(resource.inputs.environment ?? {}), resource.name).not.to.contain(
          "PRIVATE",
        );
        expect(String(resource.inputs.create ?? ""), resource.name).not.to.contain("PRIVATE");
      }
      expect(run.outputs.url).to.equal("https://localhost:8443/");
      expect(proxy.inputs.uploads[0].content).to.contain("http-request redirect scheme https");
    });

    it("both ports bind to edms:bindAddress when one is set", async function () {
      const run = await runProgram({
        stack: "production",
        overrides: { ...tls(), "edms:bindAddress": "192.0.2.10" },
      });
      expect(run.error).to.equal(undefined);
      expect(run.byName("edms-proxy-container").inputs.ports).to.deep.equal([
        { internal: 8080, external: 8000, ip: "192.0.2.10" },
        { internal: 8443, external: 8443, ip: "192.0.2.10" },
      ]);
      expect(run.outputs.url).to.equal("https://192.0.2.10:8443/");
    });

    it("names an unreadable certificate file and creates nothing", async function () {
      const run = await runProgram({
        stack: "production",
        overrides: tls({ keyFile: path.join(dir, "missing.key") }),
      });
      expect(run.error?.message).to.match(/`edms:proxy\.tls\.keyFile` cannot be read/);
      expect(run.resources.filter((r) => r.type === CONTAINER)).to.have.length(0);
    });
  });
});
