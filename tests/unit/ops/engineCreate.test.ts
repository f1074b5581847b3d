import { expect } from "chai";
import { dockerRunArgs, ContainerSpec } from "../../../ops/engine/dockerRun";
import { createSpec } from "../../../ops/engine/engineCreate";

describe("engine API create: network-less helpers only, every flag as the CLI maps it", function () {
  const helper: ContainerSpec = {
    image: "restic/restic:0.18.0",
    args: ["-euc", "restic snapshots", "edms-ops", "--json"],
    name: "edms-ops",
    stdin: true,
    remove: true,
    logging: false,
    network: "none",
    user: "0",
    entrypoint: "sh",
    labels: { "edms.stack": "production", "edms.operation": "backup --reason a=b" },
    env: ["PGOPTIONS=-c x=y"],
    mounts: [
      { volume: "edms_backups", path: "/backups", readOnly: true },
      { volume: "edms_stage", path: "/edms", labels: { "edms.role": "ops-stage" } },
    ],
    scratchPaths: ["/edms-scratch"],
    confinement: { capabilities: ["DAC_OVERRIDE"], tmpfs: ["/tmp"], readOnly: true },
    limits: { memoryMb: 512, pids: 256 },
  };

  it("maps dockerRun.ts' argv onto the create body, the network disabled", function () {
    const spec = createSpec(dockerRunArgs(helper))!;
    expect(spec).to.include({ name: "edms-ops", detach: false, stdin: true, autoRemove: true });
    expect(spec.body).to.deep.include({
      Image: "restic/restic:0.18.0",
      Cmd: ["-euc", "restic snapshots", "edms-ops", "--json"],
      Entrypoint: ["sh"],
      User: "0",
      Env: ["PGOPTIONS=-c x=y"],
      Labels: { "edms.stack": "production", "edms.operation": "backup --reason a=b" },
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      Volumes: { "/edms-scratch": {} },
      NetworkDisabled: true,
    });
    expect(spec.body.HostConfig).to.deep.include({
      AutoRemove: true,
      ReadonlyRootfs: true,
      NetworkMode: "none",
      LogConfig: { Type: "none", Config: {} },
      SecurityOpt: ["no-new-privileges"],
      CapDrop: ["ALL"],
      CapAdd: ["CAP_DAC_OVERRIDE"],
      Tmpfs: { "/tmp": "rw,nosuid,nodev" },
      Memory: 512 * 1024 * 1024,
      MemorySwap: 512 * 1024 * 1024,
      PidsLimit: 256,
      Binds: ["edms_backups:/backups:ro"],
      Mounts: [
        {
          Type: "volume",
          Source: "edms_stage",
          Target: "/edms",
          VolumeOptions: { Labels: { "edms.role": "ops-stage" }, DriverConfig: {} },
        },
      ],
    });
  });

  it("a detached one attaches nothing; its log options are kept", function () {
    const spec = createSpec(
      dockerRunArgs({ ...helper, detach: true, stdin: false, logging: true }),
    )!;
    expect(spec.detach).to.equal(true);
    expect(spec.body).to.deep.include({ AttachStdout: false, StdinOnce: false, OpenStdin: false });
    expect((spec.body.HostConfig as { LogConfig: unknown }).LogConfig).to.deep.equal({
      Type: "json-file",
      Config: { "max-size": "10m", "max-file": "3" },
    });
  });

  it("anything else stays on the CLI: another network, another verb, a flag or value it does not map", function () {
    const argv = dockerRunArgs(helper);
    const cases: [string, string[]][] = [
      ["bridge", dockerRunArgs({ ...helper, network: "bridge" })],
      ["a named network", dockerRunArgs({ ...helper, network: "edms-internal" })],
      ["no network flag", dockerRunArgs({ ...helper, network: undefined })],
      ["create", dockerRunArgs(helper, "create")],
      ["an unknown flag", [...argv.slice(0, 1), "--privileged", ...argv.slice(1)]],
      ["a bind with options", [...argv.slice(0, 1), "-v", "x:/y:rw,z", ...argv.slice(1)]],
      ["a host path bind", [...argv.slice(0, 1), "-v", "/etc:/etc", ...argv.slice(1)]],
      ["a label without =", [...argv.slice(0, 1), "--label", "bare", ...argv.slice(1)]],
      ["env from the caller's", [...argv.slice(0, 1), "-e", "SECRET", ...argv.slice(1)]],
      [
        "another security option",
        [...argv.slice(0, 1), "--security-opt", "seccomp=unconfined", ...argv.slice(1)],
      ],
      ["memory in gigabytes", [...argv.slice(0, 1), "--memory=1g", ...argv.slice(1)]],
      [
        "a bind mount",
        [...argv.slice(0, 1), "--mount", "type=bind,src=/,dst=/host", ...argv.slice(1)],
      ],
      ["a name the engine would refuse", [...argv.slice(0, 1), "--name", "-x", ...argv.slice(1)]],
      ["no image", argv.slice(0, argv.indexOf(helper.image))],
      [
        "options for the log driver none (the CLI refuses them)",
        [...argv.slice(0, 1), "--log-opt", "max-size=1m", ...argv.slice(1)],
      ],
    ];
    for (const [what, args] of cases) {
      expect(createSpec(args), what).to.equal(undefined);
    }
  });

  it("every network-less helper edms-ops writes is served", function () {
    for (const spec of [
      { ...helper, mounts: [], scratchPaths: [], labels: {}, env: [] },
      { ...helper, name: undefined, entrypoint: undefined, user: undefined, args: [] },
      { ...helper, confinement: { capabilities: [], tmpfs: [], readOnly: false } },
    ]) {
      expect(createSpec(dockerRunArgs(spec)), JSON.stringify(spec)).to.not.equal(undefined);
    }
  });
});
