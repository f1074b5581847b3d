/**
 * Zero-downtime updates and rollbacks through the proxy: while each deploy runs, two lanes of requests go
 * through the published port (loopback only, bounded; see load.ts) and every answer is recorded. Timings are
 * printed, never asserted.
 */
import { expect } from "chai";
import { docker } from "../../ops/lib/docker";
import { LoadStream, StreamReport, summary } from "./load";
import { TestStack } from "./support";

const PORT = 18901;
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
    const listed = await docker([
      "ps",
      "-a",
      "--filter",
      `label=edms.stack=${stack.name}`,
      "--filter",
      `label=edms.role=${role}`,
      "--format",
      "{{.Names}}",
    ]);
    return listed.stdout.split("\n").filter(Boolean).sort();
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

  it("the proxy alone publishes the port; web runs per release on the internal network only", async function () {
    const listed = await docker([
      "ps",
      "--filter",
      `label=edms.stack=${stack.name}`,
      "--format",
      "{{.Names}} {{.Ports}}",
    ]);
    const published = listed.stdout
      .split("\n")
      .filter((line) => line.includes("->"))
      .map((line) => line.trim());
    expect(published).to.have.length(1);
    expect(published[0]).to.match(
      new RegExp(`^${stack.prefix}-proxy 0\\.0\\.0\\.0:${PORT}->8080/tcp`),
    );
    for (const name of [web("1.0.0"), `${stack.prefix}-postgres`, `${stack.prefix}-redis`]) {
      const ports = await docker(["inspect", "-f", "{{json .HostConfig.PortBindings}}", name]);
      expect(ports.stdout.trim(), name).to.be.oneOf(["{}", "null"]);
    }
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

  it("rollback --previous 2.0.0 → 1.0.0 (migration reversed first): no connection error, one switch; 2.0.0 reports 503 only between the reversal and the switch", async function () {
    const { result, report } = await underLoad("rollback 2.0.0 → 1.0.0", async () => {
      const rollback = await stack.ops(["rollback", "--previous"]);
      expect(rollback.code, rollback.stderr).to.equal(0);
      expect(rollback.stdout).to.contain("migrate documents 0001_initial");
      return stack.up("1.0.0"); // the commands rollback prints without the Pulumi CLI
    });
    expect(result.error, result.error?.message).to.equal(undefined);
    expect(
      report.errors.map((e) => e.error),
      "connection errors",
    ).to.deep.equal([]);
    expect(report.versionsByLane).to.deep.equal([
      ["2.0.0", "1.0.0"],
      ["2.0.0", "1.0.0"],
    ]);
    // The reversed schema is older than 2.0.0's code: its /health/ says so until 1.0.0 takes over.
    for (const failed of report.failed) {
      const firstV1 = report.samples.find((s) => s.lane === failed.lane && s.version === "1.0.0");
      expect(failed.status, JSON.stringify(failed)).to.equal(503);
      expect(failed.version, JSON.stringify(failed)).to.equal("2.0.0");
      expect(failed.start, "503 after the switch").to.be.below(firstV1?.start ?? 0);
    }
    console.log(
      `      (rollback with a reversed migration: ${report.failed.length} of ${report.requests} answers were 2.0.0's 503 "unapplied migration", all before the switch)`,
    );
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

  it("a release whose web never becomes healthy: `pulumi up` fails with the reason, it is stopped, 2.0.0 serves every request", async function () {
    const { result, report } = await underLoad(`failed update 2.0.0 → ${UNHEALTHY}`, () =>
      stack.up(UNHEALTHY),
    );
    expect(result.error?.message, result.error?.message).to.match(
      new RegExp(
        `Release ${UNHEALTHY} is not healthy: ${web(UNHEALTHY)} did not answer /health/ 200 within 120s \\(last: 503\\)`,
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
      // As CI runs it: a backup first, under the load.
      const rollback = await stack.ops(["rollback", "--previous", "--backup-first"]);
      expect(rollback.code, rollback.stderr).to.equal(0);
      expect(rollback.stdout).to.contain(`back from ${UNHEALTHY} to 2.0.0`);
      expect(rollback.stdout).to.contain("no migrations to reverse");
      return stack.up("2.0.0");
    });
    expect(result.error, result.error?.message).to.equal(undefined);
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
    const back = await underLoad("rollback 2.0.1 → 2.0.0", async () => {
      const rollback = await stack.ops(["rollback", "--previous"]);
      expect(rollback.code, rollback.stderr).to.equal(0);
      expect(rollback.stdout).to.contain("back from 2.0.1 to 2.0.0");
      return stack.up("2.0.0");
    });
    expect(back.result.error, back.result.error?.message).to.equal(undefined);
    noFailures(back.report);
    expect(back.report.versionsByLane).to.deep.equal([
      ["2.0.1", "2.0.0"],
      ["2.0.1", "2.0.0"],
    ]);
    expect(await containers("web")).to.deep.equal([web("2.0.0")]);
  });
});
