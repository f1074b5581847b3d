import { expect } from "chai";
import { runProgram, useStackRuns } from "../../harness/mocks";
import { DEFAULT_LIMITS } from "../../../model/config/limits";

const CONTAINER = "docker:index/container:Container";
/** Capabilities no container of the stack may get back, whatever its role. */
const NEVER = ["SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "MKNOD", "SYS_MODULE", "ALL"];

const roleOf = (inputs: Record<string, any>): string =>
  (inputs.labels as { label: string; value: string }[]).find((l) => l.label === "edms.role")!.value;

describe("container hardening (issue 20): every container the program declares", function () {
  const runs = useStackRuns();

  for (const stack of ["dev", "staging", "production"]) {
    it(`${stack}: no new privileges, ALL capabilities dropped, limits, rotated logs`, function () {
      const containers = runs[stack].ofType(CONTAINER);
      expect(containers.length).to.be.greaterThan(3);
      for (const { name, inputs } of containers) {
        const role = roleOf(inputs) as keyof typeof DEFAULT_LIMITS;
        // The proxy alone: `switch` writes its config as root through `docker exec -u 0` (model/hardening.ts).
        expect(inputs.securityOpts, name).to.deep.equal(
          role === "proxy" ? [] : ["no-new-privileges"],
        );
        expect(inputs.capabilities.drops, name).to.deep.equal(["ALL"]);
        expect(
          inputs.capabilities.adds.filter((c: string) => NEVER.includes(c)),
          name,
        ).to.deep.equal([]);
        expect(inputs.privileged, name).to.equal(undefined);
        expect(inputs.memory, name).to.equal(DEFAULT_LIMITS[role].memoryMb);
        expect(inputs.memorySwap, name).to.equal(inputs.memory);
        expect(inputs.logDriver, name).to.equal("json-file");
        expect(inputs.logOpts, name).to.deep.equal({ "max-size": "10m", "max-file": "3" });
        expect(Object.keys(inputs.tmpfs ?? {}), name).to.include("/tmp");
        for (const options of Object.values(inputs.tmpfs) as string[]) {
          expect(options, name)
            .to.match(/nosuid/)
            .and.match(/nodev/);
        }
        // The provider uploads into `/`, which Docker refuses on a read-only root.
        if (inputs.readOnly) {
          expect(inputs.uploads ?? [], `${name}: read-only root with uploads`).to.deep.equal([]);
        }
        if (["web", "worker"].includes(role)) {
          expect(inputs.capabilities.adds, `${name} runs unprivileged`).to.deep.equal([]);
        }
        // The scheduler only reads media of any owner and mode (mounted read-only) for its backups.
        if (role === "scheduler") {
          expect(inputs.capabilities.adds, name).to.deep.equal(["DAC_READ_SEARCH"]);
        }
      }
      // Redis' root is writable only because its `requirepass` config is uploaded (tests/unit/components/networks.test.ts).
      const redis = containers.find((c) => roleOf(c.inputs) === "redis")!;
      expect(redis.inputs.readOnly === true || redis.inputs.uploads.length > 0).to.equal(true);
    });
  }

  it("takes memory limits from edms:limits", async function () {
    this.timeout(60000);
    const run = await runProgram({
      stack: "staging",
      overrides: { "edms:limits": { postgres: { memoryMb: 3000 }, web: { memoryMb: 700 } } },
    });
    expect(run.error).to.equal(undefined);
    const memory = (role: string) =>
      run.ofType(CONTAINER).find((c) => roleOf(c.inputs) === role)!.inputs.memory;
    expect([memory("postgres"), memory("web"), memory("redis")]).to.deep.equal([
      3000,
      700,
      DEFAULT_LIMITS.redis.memoryMb,
    ]);
  });
});
