/**
 * Zero-downtime updates and rollbacks through the proxy: while each deploy runs, two lanes of requests go
 * through the published port (loopback only, bounded; see load.ts) and every answer is recorded. Timings are
 * printed, never asserted.
 */
import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import { LoadStream, StreamReport, summary } from "../harness/load";
import { addressOn, networksOf, reachFrom } from "../harness/reach";
import { RELEASE_HEADER, WEB_INTERNAL_PORT } from "../../model/proxy";
import { request, setCookie } from "../harness/http";
import { PROJECT_DIR, TestStack, WITH_PULUMI } from "../harness/stack";

const PORT = 18901;
const TLS_PORT = 18902;
const REPO = "e2e-proxy/backend";
const UNHEALTHY = "2.0.2-unhealthy";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("e2e: zero-downtime update and rollback through the proxy", function () {
  const stack = new TestStack("proxy-zd", "staging", {
    "edms:httpPort": PORT,
    "edms:backendImage": REPO,
    "edms:proxy": { image: "edms-test/proxy:haproxy" },
    // Pre-deploy backups run under the load too: /health/ writes and removes probe files in the media
    // volume the whole time (restic leaves them out, and a directory changing under it is no error).
    "edms:backup": { beforeDeploy: true, keep: 5 },
  });
  const web = (version: string) => `${stack.prefix}-web-${version}`;
  const reports: string[] = [];

  async function containers(role: "web" | "worker"): Promise<string[]> {
    return (await stack.containers({ all: true, role })).sort();
  }
  const running = async (name: string) =>
    (await docker(["inspect", "-f", "{{.State.Running}}", name])).stdout.trim() === "true";

  /** A steady stream of requests for as long as `during` runs, plus a second either side. */
  async function underLoad<T>(what: string, during: () => Promise<T>) {
    const stream = new LoadStream(PORT).start();
    let result: T;
    try {
      await sleep(1000);
      result = await during();
      await sleep(1000);
    } catch (err) {
      await stream.stop(); // the stream never outlives its scenario
      throw err;
    }
    const report = await stream.stop();
    reports.push(summary(what, report));
    console.log(reports[reports.length - 1]);
    return { result, report };
  }
  const noFailures = (report: StreamReport) => {
    expect(
      report.errors.map((e) => e.error),
      "connection errors",
    ).to.deep.equal([]);
    expect(
      report.failed.map((f) => `${f.status} ${f.version}`),
      "failed requests",
    ).to.deep.equal([]);
  };

  before(async function () {
    // Releases under a repository of this test's own; 2.0.1 is 2.0.0 again (a release without migrations),
    // and 2.0.2-unhealthy is 2.0.0 whose /health/ always answers 503.
    for (const tag of ["1.0.0", "2.0.0"]) {
      await docker(["tag", `edms-sample/backend:${tag}`, `${REPO}:${tag}`]);
    }
    await docker(["tag", "edms-sample/backend:2.0.0", `${REPO}:2.0.1`]);
    await docker(["build", "-q", "-t", `${REPO}:${UNHEALTHY}`, "-"], {
      input: [
        "FROM edms-sample/backend:2.0.0",
        "USER root",
        "RUN sed -i 's/    healthy = all(/    healthy = False and all(/' /app/edms/health.py",
        "USER edms",
        "",
      ].join("\n"),
    });
    await stack.destroy();
    const { error } = await stack.up("1.0.0");
    expect(error, error?.message).to.equal(undefined);
    await docker(["exec", "-i", web("1.0.0"), "python3", "manage.py", "shell"], {
      input: [
        "from django.contrib.auth.models import User",
        "from django.core.files.base import ContentFile",
        "from documents.models import Document",
        'u = User.objects.create(username="clerk")',
        'Document(title="Contract", owner=u).file.save("contract.bin", ContentFile(b"x" * 2048), save=True)',
        "",
      ].join("\n"),
    });
  });

  after(async function () {
    console.log(reports.join("\n"));
    await stack.destroy();
    await docker(["rmi", ...["1.0.0", "2.0.0", "2.0.1", UNHEALTHY].map((t) => `${REPO}:${t}`)], {
      allowFailure: true,
    });
  });

  it("the proxy alone publishes the port; web runs per release and publishes nothing", async function () {
    const listed = await stack.containers({ format: "{{.Names}} {{.Ports}}" });
    const published = listed.filter((line) => line.includes("->")).map((line) => line.trim());
    expect(published).to.have.length(1);
    expect(published[0]).to.match(
      new RegExp(`^${stack.prefix}-proxy 0\\.0\\.0\\.0:${PORT}->8080/tcp`),
    );
    for (const name of [web("1.0.0"), `${stack.prefix}-postgres`, `${stack.prefix}-redis`]) {
      const ports = await docker(["inspect", "-f", "{{json .HostConfig.PortBindings}}", name]);
      expect(ports.stdout.trim(), name).to.be.oneOf(["{}", "null"]);
    }
  });

  it("the proxy is on the front network only: it opens no connection to PostgreSQL or Redis, by name or address; web does", async function () {
    const n = stack.names;
    const proxy = n.proxyContainer;
    expect(await networksOf(proxy)).to.deep.equal([n.frontNetwork]);
    expect(await networksOf(web("1.0.0"))).to.deep.equal([n.dataNetwork, n.frontNetwork].sort());
    const datastores = [
      ["postgres", n.postgresContainer, 5432],
      ["redis", n.redisContainer, 6379],
    ] as const;
    for (const [alias, container, port] of datastores) {
      const fromWeb = await reachFrom(web("1.0.0"), alias, port);
      expect(fromWeb.ok, `web → ${alias}: ${fromWeb.detail}`).to.equal(true);
      const address = await addressOn(container, n.dataNetwork);
      expect(address).to.match(/^\d+\.\d+\.\d+\.\d+$/);
      for (const host of [alias, container, address]) {
        const fromProxy = await reachFrom(proxy, host, port);
        expect(fromProxy.ok, `proxy → ${host}:${port}`).to.equal(false);
        expect(fromProxy.detail, `proxy → ${host}:${port}`).to.match(
          /Name or service not known|Temporary failure in name resolution|timed out|unreachable|No route/i,
        );
      }
    }
    // The proxy still reaches the live web, on the front network.
    const toWeb = await reachFrom(proxy, web("1.0.0"), WEB_INTERNAL_PORT);
    expect(toWeb.ok, toWeb.detail).to.equal(true);
  });

  it("update 1.0.0 → 2.0.0 with a migration: every request answered, the release switches once, the old web is gone", async function () {
    const { result, report } = await underLoad("update 1.0.0 → 2.0.0", () => stack.up("2.0.0"));
    expect(result.error, result.error?.message).to.equal(undefined);
    expect(result.hooks.map((h) => h.name)).to.deep.equal([
      "preDeployBackup",
      "migrate",
      "proxySwitch",
      "healthGate",
      "recordDeployment",
    ]);
    noFailures(report);
    expect(report.versionsByLane).to.deep.equal([
      ["1.0.0", "2.0.0"],
      ["1.0.0", "2.0.0"],
    ]);
    expect(await containers("web")).to.deep.equal([web("2.0.0")]);
    expect(await containers("worker")).to.deep.equal([`${stack.prefix}-worker`]);
    expect(
      await stack.psql("SELECT max(name) FROM django_migrations WHERE app = 'documents';"),
    ).to.equal("0002_document_slug");
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.runningVersion).to.equal("2.0.0");
    expect(status.containers).to.include({ [web("2.0.0")]: "running" });
    const health = await stack.ops(["health"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
    expect(health.stdout).to.contain("http /health/ (through the proxy)");
    // The new worker consumes what the new web enqueues.
    const checksum = await docker(["exec", "-i", web("2.0.0"), "python3", "manage.py", "shell"], {
      input:
        "from documents.models import Document\nfrom documents.tasks import compute_checksum\n" +
        "print(compute_checksum.delay(Document.objects.get().id).get(timeout=60))\n",
    });
    expect(checksum.stdout.trim()).to.match(/^[0-9a-f]{64}$/);
  });

  it("rollback --previous 2.0.0 → 1.0.0: 1.0.0 takes over first, then 2.0.0's migration is reversed; every request answered, one switch", async function () {
    const { result, report } = await underLoad("rollback 2.0.0 → 1.0.0", async () => {
      // rollback runs `pulumi config set` and `pulumi up` itself (here the tests' stand-in CLI).
      const rollback = await stack.ops(["rollback", "--previous", "--backup-first"], WITH_PULUMI);
      stack.reload();
      return rollback;
    });
    noFailures(report);
    expect(report.versionsByLane).to.deep.equal([
      ["2.0.0", "1.0.0"],
      ["2.0.0", "1.0.0"],
    ]);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.contain("migrate documents 0001_initial");
    expect(result.stdout).to.match(/The state before the rollback is backup \S+-pre-rollback\./);
    expect(stack.config["edms:version"]).to.equal("1.0.0");
    expect(await stack.documentsSchema()).to.deep.equal({ migration: "0001_initial", slug: false });
    // 1.0.0 writes on its own schema again, and history says what the rollback did.
    await docker(["exec", "-i", web("1.0.0"), "python3", "manage.py", "shell"], {
      input:
        'from documents.models import Document\nfrom django.contrib.auth.models import User\nDocument.objects.create(title="After rollback", owner=User.objects.get(username="clerk"))\n',
    });
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.runningVersion).to.equal("1.0.0");
    expect(status.unfinishedRollback).to.equal(null);
    const last = status.deployments[status.deployments.length - 1];
    expect(last).to.include({ version: "1.0.0", rolledBackFrom: "2.0.0" });
    expect(last.migrations.documents).to.equal("0001_initial");
    expect((await stack.ops(["health"])).code).to.equal(0);
    expect(await containers("web")).to.deep.equal([web("1.0.0")]);
  });

  it("update again to 2.0.0 while 1.0.0 serves: every request answered, one switch", async function () {
    const { result, report } = await underLoad("update 1.0.0 → 2.0.0 again", () =>
      stack.up("2.0.0"),
    );
    expect(result.error, result.error?.message).to.equal(undefined);
    noFailures(report);
    expect(report.versionsByLane).to.deep.equal([
      ["1.0.0", "2.0.0"],
      ["1.0.0", "2.0.0"],
    ]);
  });

  it("a release whose web never becomes healthy: `pulumi up` fails with the reason after edms:healthWaitSeconds, it is stopped, 2.0.0 serves every request", async function () {
    // 30 s instead of the default 120: what an operator sets for an app that starts fast (or slowly).
    stack.set("edms:healthWaitSeconds", 30);
    const { result, report } = await underLoad(`failed update 2.0.0 → ${UNHEALTHY}`, () =>
      stack.up(UNHEALTHY),
    ).finally(() => stack.set("edms:healthWaitSeconds", undefined));
    expect(result.error?.message, result.error?.message).to.match(
      new RegExp(
        `Release ${UNHEALTHY} is not healthy: ${web(UNHEALTHY)} did not answer /health/ 200 within 30s \\(last: 503\\)`,
      ),
    );
    expect(result.error?.message).to.contain(
      `The proxy still sends every request to ${web("2.0.0")} (release 2.0.0)`,
    );
    expect(result.hooks.map((h) => h.name)).to.deep.equal([
      "preDeployBackup",
      "migrate",
      "proxySwitch",
    ]);
    noFailures(report);
    expect(report.versionsByLane).to.deep.equal([["2.0.0"], ["2.0.0"]]);
    expect(await running(web(UNHEALTHY))).to.equal(false);
    expect(await running(web("2.0.0"))).to.equal(true);
    // One worker, never two: the failed release's replaced the old one (see the README on celery).
    expect(await containers("worker")).to.deep.equal([`${stack.prefix}-worker`]);
  });

  it("the CI rollback step after it (rollback --previous, then up 2.0.0): nothing to switch, nothing fails, the failed web is deleted", async function () {
    const { result, report } = await underLoad(`CI rollback ${UNHEALTHY} → 2.0.0`, async () => {
      // As CI runs it: a backup first, under the load; rollback runs `pulumi up` itself.
      const rollback = await stack.ops(["rollback", "--previous", "--backup-first"], WITH_PULUMI);
      stack.reload();
      return rollback;
    });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.contain(`back from ${UNHEALTHY} to 2.0.0`);
    expect(result.stdout).to.contain("no migrations to reverse");
    noFailures(report);
    expect(report.versionsByLane).to.deep.equal([["2.0.0"], ["2.0.0"]]);
    expect(await containers("web")).to.deep.equal([web("2.0.0")]);
  });

  it("update to 2.0.1 and rollback --previous to 2.0.0: each switches exactly once with every request answered", async function () {
    const up = await underLoad("update 2.0.0 → 2.0.1", () => stack.up("2.0.1"));
    expect(up.result.error, up.result.error?.message).to.equal(undefined);
    noFailures(up.report);
    expect(up.report.versionsByLane).to.deep.equal([
      ["2.0.0", "2.0.1"],
      ["2.0.0", "2.0.1"],
    ]);
    // Without the Pulumi CLI, as an operator on a machine without it: the rollback plans, says what to run,
    // and finishes when run again after the deploy; until then status names it.
    const back = await underLoad("rollback 2.0.1 → 2.0.0 (by hand)", async () => {
      const rollback = await stack.ops(["rollback", "--previous"]);
      expect(rollback.code, `incomplete (3): ${rollback.stderr}`).to.equal(3);
      expect(rollback.stdout).to.contain("back from 2.0.1 to 2.0.0");
      expect(rollback.stdout).to.contain(
        `pulumi config set edms:version 2.0.0 --stack ${stack.name}`,
      );
      expect(rollback.stdout).to.contain(`edms-ops rollback --previous --stack ${stack.name}`);
      const pending = JSON.parse((await stack.ops(["status", "--json"])).stdout);
      expect(pending.unfinishedRollback).to.include({ from: "2.0.1", to: "2.0.0" });
      const up = await stack.up("2.0.0");
      const again = await stack.ops(["rollback", "--previous"]);
      expect(again.code, again.stderr).to.equal(0);
      expect(again.stdout).to.contain("Finishing the rollback 2.0.1 → 2.0.0");
      expect(again.stdout).to.contain("Rolled back to 2.0.0");
      return up;
    });
    expect(back.result.error, back.result.error?.message).to.equal(undefined);
    expect(JSON.parse((await stack.ops(["status", "--json"])).stdout).unfinishedRollback).to.equal(
      null,
    );
    noFailures(back.report);
    expect(back.report.versionsByLane).to.deep.equal([
      ["2.0.1", "2.0.0"],
      ["2.0.1", "2.0.0"],
    ]);
    expect(await containers("web")).to.deep.equal([web("2.0.0")]);
  });
  it("TLS at the proxy: the plain port only redirects to HTTPS; HTTPS serves the release to its allowed host with secure cookies; switch and health go through HTTPS", async function () {
    // A certificate of the test's own for the host name users would reach the stack by.
    const certs = fs.mkdtempSync(path.join(PROJECT_DIR, "certs-"));
    const [crt, key] = [path.join(certs, "edms.crt"), path.join(certs, "edms.key")];
    const selfSigned = "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=edms.test".split(" ");
    execFileSync("openssl", [...selfSigned, "-keyout", key, "-out", crt], { stdio: "ignore" });
    stack.set("edms:proxy", {
      image: "edms-test/proxy:haproxy",
      tls: { port: TLS_PORT, certificateFile: crt, keyFile: key },
    });
    stack.set("edms:django", { allowedHosts: ["edms.test"] });
    stack.set("edms:bindAddress", "127.0.0.1");
    // A new haproxy.cfg replaces the proxy; web and worker get the new environment.
    const { error, hooks } = await stack.up("2.0.0");
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.include("proxySwitch");

    const plain = await request(`http://127.0.0.1:${PORT}/admin/login/?next=/admin/`, {
      host: `edms.test:${PORT}`,
    });
    expect(plain.status).to.equal(301);
    expect(plain.headers.location).to.equal(
      `https://edms.test:${TLS_PORT}/admin/login/?next=/admin/`,
    );
    expect(
      plain.headers[RELEASE_HEADER.toLowerCase()],
      "no release answers in plain HTTP",
    ).to.equal(undefined);
    const secure = await request(`https://127.0.0.1:${TLS_PORT}/admin/login/`, {
      host: "edms.test",
    });
    expect(secure.status, secure.body.slice(0, 200)).to.equal(200);
    expect(secure.headers[RELEASE_HEADER.toLowerCase()]).to.equal("2.0.0");
    expect(secure.headers["strict-transport-security"]).to.match(/max-age=31536000/);
    expect(setCookie(secure, "csrftoken")).to.match(/; Secure/i);
    const stranger = await request(`https://127.0.0.1:${TLS_PORT}/admin/login/`, {
      host: "evil.example",
    });
    expect(stranger.status).to.equal(400);
    // Both ports on loopback only (edms:bindAddress), none on every interface.
    const bindings = JSON.parse(
      (
        await docker([
          "inspect",
          "-f",
          "{{json .HostConfig.PortBindings}}",
          `${stack.prefix}-proxy`,
        ])
      ).stdout,
    ) as Record<string, { HostIp: string; HostPort: string }[]>;
    expect(bindings).to.deep.equal({
      "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: String(PORT) }],
      "8443/tcp": [{ HostIp: "127.0.0.1", HostPort: String(TLS_PORT) }],
    });
    const health = await stack.ops(["health"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
    expect(health.stdout).to.contain("http /health/ (through the proxy)");
  });
});
