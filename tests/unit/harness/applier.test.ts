/**
 * The e2e applier's own rules, without Docker: what it refuses to model loudly, random values drawn as the
 * random provider draws them, hooks run (create on new triggers, update on other input changes) with
 * their `stdout` handed on as the command provider does, and what a refresh and an update do with a
 * stopped or missing container, as @pulumi/docker 5.x's provider (terraform-provider-docker 4.x) does.
 * (Against an engine:
 * tests/e2e/deploy.test.ts 2b.)
 */
import { expect } from "chai";
import * as os from "os";
import { backupIdFromHookOutput } from "../../../model/hooks";
import {
  applyHook,
  checkContainerInputs,
  HookRun,
  checkImageInputs,
  containerDeleteError,
  containerNetworkArgs,
  containerStep,
  hash,
  networkCreateArgs,
  randomPassword,
  readContainer,
  refuseReplacement,
  StateResource,
} from "../../harness/applier";

const CONTAINER = "docker:index/container:Container";

/** A container as the applier's state holds it after creating it from `inputs`. */
function created(inputs: Record<string, any>): StateResource {
  return {
    type: CONTAINER,
    dockerName: inputs.name,
    inputsHash: hash(inputs),
    id: "c0ffee",
    grace: 60,
    retainOnDelete: false,
    ports: (inputs.ports ?? []).length,
  };
}

describe("e2e applier", function () {
  it("builds images only as the program declares them: local, from a context, with args", function () {
    const image = {
      imageName: "p-scheduler:abc",
      skipPush: true,
      build: { context: "/c", dockerfile: "/c/Dockerfile", args: { BASE: "b" } },
    };
    expect(() => checkImageInputs("i", image)).not.to.throw();
    expect(() => checkImageInputs("i", { ...image, skipPush: false })).to.throw(/a push/);
    expect(() => checkImageInputs("i", { ...image, registry: {} })).to.throw(/registry/);
    expect(() =>
      checkImageInputs("i", { ...image, build: { ...image.build, platform: "linux/arm64" } }),
    ).to.throw(/build\.platform/);
  });

  it("draws random values from letters, digits and exactly the special characters allowed", function () {
    const special = "!#%()*+-.:;<=>?@[]^_{|}~";
    const values = Array.from({ length: 20 }, () =>
      randomPassword("key", { length: 64, special: true, overrideSpecial: special }),
    );
    const all = values.join("");
    expect(values.every((v) => v.length === 64)).to.equal(true);
    expect([...all].every((c) => /[A-Za-z0-9]/.test(c) || special.includes(c))).to.equal(true);
    expect(
      [...all].some((c) => special.includes(c)),
      "some special character drawn",
    ).to.equal(true);
    const plain = randomPassword("pw", { length: 200, special: false });
    expect(plain).to.match(/^[A-Za-z0-9]{200}$/);
    expect(() => randomPassword("pw", { length: 8, minSpecial: 2 })).to.throw(/minSpecial/);
  });

  it("fails loudly on a container input it would not apply", function () {
    const base = { name: "x", image: "img", envs: ["A=1"], ports: [{ internal: 1, external: 2 }] };
    expect(() => checkContainerInputs("c", base)).not.to.throw();
    expect(() => checkContainerInputs("c", { ...base, memory: 512 })).not.to.throw();
    expect(() => checkContainerInputs("c", { ...base, pidMode: "host" })).to.throw(/pidMode/);
    expect(() =>
      checkContainerInputs("c", {
        ...base,
        volumes: [{ volumeName: "v", containerPath: "/v", fromContainer: "c" }],
      }),
    ).to.throw(/volumes\.fromContainer/);
    // The scheduler's socket mount is a host path: modelled.
    expect(() =>
      checkContainerInputs("c", {
        ...base,
        volumes: [{ hostPath: "/var/run/docker.sock", containerPath: "/s", readOnly: true }],
      }),
    ).not.to.throw();
  });

  it("models a volume's new name as a replacement; other volume or network changes, and protected ones, stop the run", function () {
    const volume: StateResource = {
      type: "docker:index/volume:Volume",
      dockerName: "edms_postgres_data",
      inputsHash: "old",
      id: "edms_postgres_data",
      grace: 0,
      retainOnDelete: false,
    };
    const registration = (protect: boolean) => ({
      type: volume.type,
      name: "edms-data-postgres",
      deleteBeforeReplace: false,
      protect,
      retainOnDelete: protect,
    });
    const renamed = { name: "edms_postgres_data_g1", labels: [] };
    expect(() =>
      refuseReplacement(volume.type, "edms-data-postgres", volume, renamed, registration(false)),
    ).not.to.throw();
    expect(() =>
      refuseReplacement(volume.type, "edms-data-postgres", volume, renamed, registration(true)),
    ).to.throw(/marked for protection/);
    const relabelled = { name: "edms_postgres_data", labels: [{ label: "a", value: "b" }] };
    expect(() =>
      refuseReplacement(volume.type, "edms-data-postgres", volume, relabelled, registration(false)),
    ).to.throw(/does not model/);
    const network = {
      ...volume,
      type: "docker:index/network:Network",
      dockerName: "edms-internal",
    };
    expect(() =>
      refuseReplacement(network.type, "edms-network-net", network, { name: "other" }, undefined),
    ).to.throw(/does not model/);
  });

  it("creates an `internal` network as such, and fails loudly on a network input it would not apply", function () {
    const labels = [{ label: "edms.stack", value: "s" }];
    expect(
      networkCreateArgs({ name: "p-data", driver: "bridge", internal: true, labels }),
    ).to.deep.equal([
      "network",
      "create",
      "--driver",
      "bridge",
      "--internal",
      "--label",
      "edms.stack=s",
      "p-data",
    ]);
    expect(networkCreateArgs({ name: "p-front", driver: "bridge" })).not.to.include("--internal");
    expect(() => networkCreateArgs({ name: "n", ipamConfigs: [] })).to.throw(/ipamConfigs/);
  });

  it("joins a container to every network it declares, with each network's aliases, before it starts", function () {
    const args = containerNetworkArgs({
      name: "p-web",
      networksAdvanced: [{ name: "p-front" }, { name: "p-data", aliases: ["web", "app"] }],
    });
    expect(args.create).to.deep.equal(["--network", "p-front"]);
    expect(args.connect).to.deep.equal([
      ["network", "connect", "--alias", "web", "--alias", "app", "p-data", "p-web"],
    ]);
    const one = containerNetworkArgs({
      name: "p-redis",
      networksAdvanced: [{ name: "p-data", aliases: ["redis"] }],
    });
    expect(one).to.deep.equal({
      create: ["--network", "p-data", "--network-alias", "redis"],
      connect: [],
    });
    expect(containerNetworkArgs({ name: "p-scheduler" })).to.deep.equal({
      create: [],
      connect: [],
    });
  });

  it("hands a hook's stdout to dependents as the provider does: trimmed, and kept while it does not run again", async function () {
    const state = { hooks: {} as Record<string, string> };
    const runs: HookRun[] = [];
    const backup = (id: string, release: string) => ({
      create: `echo progress >&2; echo some-line; echo ${id}`,
      dir: os.tmpdir(),
      environment: {},
      triggers: [release],
    });
    const first = await applyHook(state, "preDeployBackup", backup("id-1", "2.0.0"), runs);
    expect(first).to.equal("some-line\nid-1");
    expect(backupIdFromHookOutput(first)).to.equal("id-1");
    // Unchanged: not run again, the stored output is what a dependent gets (e.g. a drill retried).
    const again = await applyHook(state, "preDeployBackup", backup("id-1", "2.0.0"), runs);
    expect(again).to.equal(first);
    expect(runs).to.have.length(1);
    const next = await applyHook(state, "preDeployBackup", backup("id-3", "3.0.0"), runs);
    expect(backupIdFromHookOutput(next)).to.equal("id-3");
    expect(runs.map((r) => r.stderr)).to.deep.equal(["progress\n", "progress\n"]);
  });

  it("an input change without new triggers runs `update` (not a hook run), whose output becomes stdout", async function () {
    const state = { hooks: {} as Record<string, string> };
    const runs: HookRun[] = [];
    const hook = (settings: string) => ({
      create: "echo 2026-11-25T14-00-00Z-pre-deploy",
      update: "true",
      dir: os.tmpdir(),
      environment: { EDMS_SETTINGS_JSON: settings },
      triggers: ["2.0.0"],
    });
    await applyHook(state, "preDeployBackup", hook("{}"), runs);
    expect(await applyHook(state, "preDeployBackup", hook("{}"), runs)).to.equal(
      "2026-11-25T14-00-00Z-pre-deploy",
    );
    // As pulumi-command's Update: the `update` command's output replaces the stored one.
    expect(await applyHook(state, "preDeployBackup", hook('{"keep":3}'), runs)).to.equal("");
    expect(runs).to.have.length(1);
  });

  it("a failing hook fails the update and keeps nothing of it", async function () {
    const state = { hooks: {} as Record<string, string> };
    const failing = { create: "echo partial; exit 3", dir: os.tmpdir(), triggers: [1] };
    let error: Error | undefined;
    await applyHook(state, "preDeployBackup", failing, []).catch((e: Error) => (error = e));
    expect(error?.message).to.match(/hook preDeployBackup failed \(exit 3\)/);
    expect(state).to.deep.include({ hooks: {}, hookStdout: {} });
  });

  describe("a container stopped or removed outside Pulumi", function () {
    const worker = { name: "edms-worker", image: "sha256:1", ports: [] };
    const web = {
      name: "edms-web",
      image: "sha256:1",
      ports: [{ internal: 8000, external: 8080 }],
    };

    it("without a refresh `pulumi up` leaves it as the state says: stopped or missing, nothing done", function () {
      expect(containerStep(created(worker), worker)).to.equal("same");
      expect(containerStep(created(web), web)).to.equal("same");
    });

    it("a refresh keeps a stopped container in the state, `must_run` false, and the update starts that same container", function () {
      const read = readContainer(created(worker), { running: false });
      expect(read, "the read keeps it (3.x deleted it and dropped it)").to.deep.equal({
        ...created(worker),
        mustRun: false,
      });
      expect(read!.id, "the same container, not a new one").to.equal("c0ffee");
      expect(containerStep(read, worker)).to.equal("start");
    });

    it("a stopped container that publishes ports reads back none, a ForceNew difference: it is replaced", function () {
      const read = readContainer(created(web), { running: false });
      expect(read).to.deep.include({ id: "c0ffee", mustRun: false, ports: 0 });
      expect(containerStep(read, web)).to.equal("replace");
    });

    it("a refresh drops a missing container from the state, so the update creates it again", function () {
      expect(readContainer(created(worker), null)).to.equal(undefined);
      expect(containerStep(undefined, worker)).to.equal("create");
    });

    it("a running container reads back unchanged; changed inputs replace a stopped one as a running one", function () {
      expect(readContainer(created(web), { running: true })).to.deep.equal(created(web));
      const stopped = readContainer(created(worker), { running: false });
      expect(containerStep(stopped, { ...worker, image: "sha256:2" })).to.equal("replace");
    });

    it("deleting a container that is already gone succeeds, as the provider's delete ignores it; other errors fail", function () {
      const gone = { code: 1, stderr: "Error response from daemon: No such container: c0ffee\n" };
      expect(containerDeleteError("stopping", "edms-worker", gone)).to.equal(undefined);
      expect(containerDeleteError("deleting", "edms-worker", gone)).to.equal(undefined);
      expect(containerDeleteError("deleting", "edms-worker", { code: 0, stderr: "" })).to.equal(
        undefined,
      );
      const denied = { code: 1, stderr: "permission denied while trying to connect" };
      expect(containerDeleteError("stopping", "edms-worker", denied)?.message).to.equal(
        "Error stopping container edms-worker: permission denied while trying to connect",
      );
    });
  });
});
