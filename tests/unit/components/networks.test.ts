/**
 * Issue 20, networks: the proxy and web on a front network; web, worker, PostgreSQL and Redis on an
 * `internal` data network the proxy is not on. Redis requires a generated password, handed over as files.
 * (Against an engine: tests/e2e/deploy.test.ts 5b, tests/e2e/proxy.test.ts.)
 */
import { expect } from "chai";
import { runProgram, useStackRuns, ProgramRun } from "../../harness/mocks";
import { REDIS_CONFIG_FILE, REDIS_PASSWORD_FILE } from "../../../model/containers";

const CONTAINER = "docker:index/container:Container";
const NETWORK = "docker:index/network:Network";
const REDIS_SECRET = /mock-secret-edms-secrets-redis-password-Zq7/;

const roleOf = (inputs: Record<string, any>): string =>
  (inputs.labels as { label: string; value: string }[]).find((l) => l.label === "edms.role")!.value;

/** Each container role → the Docker names of the networks it joins (with aliases). */
function placement(run: ProgramRun): Record<string, { name: string; aliases?: string[] }[]> {
  return Object.fromEntries(
    run.ofType(CONTAINER).map((c) => [roleOf(c.inputs), c.inputs.networksAdvanced ?? []]),
  );
}

describe("networks (issue 20): front and internal data network, Redis with a password", function () {
  const runs = useStackRuns();

  for (const stack of ["dev", "staging", "production"]) {
    it(`${stack}: the proxy is on the front network only; the datastores on the internal data network only`, function () {
      const run = runs[stack];
      const networks = run.ofType(NETWORK).map((n) => n.inputs);
      const prefix = run.byName("edms-postgres-container").inputs.name.replace(/-postgres$/, "");
      expect(networks.map((n) => [n.name, n.internal === true]).sort()).to.deep.equal([
        [`${prefix}-data`, true],
        [`${prefix}-front`, false],
      ]);
      const front = `${prefix}-front`;
      const data = `${prefix}-data`;
      const on = placement(run);
      expect(on.postgres).to.deep.equal([{ name: data, aliases: ["postgres"] }]);
      expect(on.redis).to.deep.equal([{ name: data, aliases: ["redis"] }]);
      expect(on.worker).to.deep.equal([{ name: data }]);
      expect(on.web).to.deep.equal([{ name: front }, { name: data }]);
      if (on.proxy) {
        expect(on.proxy).to.deep.equal([{ name: front }]);
      }
      // Nothing on the internal network publishes a port but web, which Docker maps on the front one.
      for (const c of run.ofType(CONTAINER)) {
        if ((c.inputs.ports ?? []).length) {
          expect(["web", "proxy"], c.name).to.include(roleOf(c.inputs));
          expect(c.inputs.networksAdvanced.map((n: { name: string }) => n.name)).to.include(front);
        }
      }
    });
  }

  it("without the proxy web publishes the port and joins both networks; the proxy's absence changes no datastore", async function () {
    this.timeout(60000);
    const run = await runProgram({
      stack: "staging",
      overrides: { "edms:proxy": { enabled: false } },
    });
    expect(run.error).to.equal(undefined);
    const on = placement(run);
    expect(on.proxy).to.equal(undefined);
    expect(on.web.map((n) => n.name)).to.deep.equal(["edms-staging-front", "edms-staging-data"]);
    expect(
      run.ofType(CONTAINER).find((c) => roleOf(c.inputs) === "web")!.inputs.ports,
    ).to.have.length(1);
    expect(on.postgres).to.deep.equal(placement(runs.staging).postgres);
  });

  it("Redis reads `requirepass` from an uploaded config file, its first argument; the password is in no argv, env, label or healthcheck", function () {
    const redis = runs.production.byName("edms-redis-container");
    const { command, uploads, envs, labels, healthcheck } = redis.inputs;
    expect(command.slice(0, 2)).to.deep.equal(["redis-server", REDIS_CONFIG_FILE]);
    const config = uploads.find((u: { file: string }) => u.file === REDIS_CONFIG_FILE);
    expect(config.content).to.match(new RegExp(`^requirepass ${REDIS_SECRET.source}\\n$`));
    expect(redis.secretInputs).to.include.members(["uploads.0.content", "uploads.1.content"]);
    const plain = JSON.stringify({ command, envs, labels, healthcheck });
    expect(plain).not.to.match(REDIS_SECRET);
    // The engine's healthcheck authenticates from the file, or the container would never be healthy.
    expect(healthcheck.tests.join(" ")).to.contain(REDIS_PASSWORD_FILE);
  });

  it("web, worker, migrate and bootstrap get the same password as a file, never in REDIS_URL", function () {
    const run = runs.production;
    for (const c of run
      .ofType(CONTAINER)
      .filter((c) => ["web", "worker"].includes(roleOf(c.inputs)))) {
      const upload = c.inputs.uploads.find((u: { file: string }) => u.file === REDIS_PASSWORD_FILE);
      expect(upload?.content, c.name).to.match(REDIS_SECRET);
      expect(c.inputs.envs).to.include(`REDIS_PASSWORD_FILE=${REDIS_PASSWORD_FILE}`);
      expect(c.inputs.envs).to.include("REDIS_URL=redis://redis:6379/0");
      expect(JSON.stringify(c.inputs.envs)).not.to.match(REDIS_SECRET);
    }
    for (const hook of ["migrate", "bootstrap"]) {
      expect(run.byName(hook).inputs.environment.EDMS_REDIS_PASSWORD, hook).to.match(REDIS_SECRET);
      expect(run.byName(hook).secretInputs).to.include("environment.EDMS_REDIS_PASSWORD");
    }
  });
});
