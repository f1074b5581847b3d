/**
 * The reads edms-ops asks of the local engine's socket (ops/engine/engineApi.ts) give, on a real engine, what
 * the docker CLI gives for the same argv: exit code, stderr, and stdout (the same JSON, or the same lines).
 * So do the execs it runs there (ops/engine/engineExec.ts): stdin, exit codes, both outputs, the CLI's
 * errors. No stack is deployed; two containers, one volume and one image of the test set are enough.
 */
import { expect } from "chai";
import { Readable } from "stream";
import { docker, RunOptions } from "../../ops/engine/docker";
import { ContainerSpec, dockerRunArgs } from "../../ops/engine/dockerRun";
import { createSpec } from "../../ops/engine/engineCreate";
import { localSocket, request } from "../../ops/engine/engineApi";

const CONTAINER = "e2e-engineapi-probe";
const STOPPED = "e2e-engineapi-stopped";
const VOLUME = "e2e-engineapi-probe";
const IMAGE = "edms-test/backup:restic-0.18-busybox";
const LABELS = ["edms.stack=engineapi", "edms.role=probe=odd"];

async function both(args: string[], options: RunOptions = {}) {
  process.env.EDMS_DOCKER_API = "off";
  const cli = await docker(args, { ...options, allowFailure: true }).finally(
    () => delete process.env.EDMS_DOCKER_API,
  );
  // No docker CLI on PATH here: an answer that fell back to the CLI fails instead of passing unnoticed.
  const path = process.env.PATH;
  process.env.PATH = "/nonexistent";
  const socket = await docker(args, { ...options, allowFailure: true }).finally(
    () => (process.env.PATH = path),
  );
  return { cli, socket };
}

/** JSON compared as data (the CLI indents its own way); any other output as it is. */
const asData = (text: string) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};

describe("e2e: reads from the engine socket equal the docker CLI's", function () {
  const cleanup = async () => {
    await docker(["rm", "-f", "-v", CONTAINER, STOPPED], { allowFailure: true });
    await docker(["volume", "rm", "-f", VOLUME], { allowFailure: true });
  };
  before(async function () {
    await cleanup();
    await docker(["volume", "create", VOLUME]);
    await docker([
      "run",
      "-d",
      "--name",
      CONTAINER,
      "--network",
      "none",
      ...LABELS.flatMap((label) => ["--label", label]),
      "--entrypoint",
      "sleep",
      IMAGE,
      "300",
    ]);
    await docker(["create", "--name", STOPPED, "--network", "none", IMAGE]);
  });
  after(cleanup);

  const shapes: string[][] = [
    ["version", "--format", "{{.Server.Version}}"],
    ["container", "inspect", CONTAINER],
    ["container", "inspect", "e2e-engineapi-missing"],
    ["container", "inspect", CONTAINER, "e2e-engineapi-missing"],
    ["volume", "inspect", VOLUME],
    ["volume", "inspect", "e2e-engineapi-missing"],
    ["ps", "-aq", ...LABELS.flatMap((label) => ["--filter", `label=${label}`])],
    ["ps", "-aq", "--filter", "label=edms.stack=engineapi", "--filter", "status=exited"],
    ["ps", "-q", "--filter", "label=edms.stack=engineapi-none"],
    ["image", "inspect", IMAGE, "--format", "{{.Id}}"],
    ["image", "inspect", "-f", "{{.Id}}", "edms-test/missing:0"],
  ];
  for (const args of shapes) {
    it(`docker ${args.join(" ")}`, async function () {
      const { cli, socket } = await both(args);
      expect(socket.code, "exit code").to.equal(cli.code);
      expect(socket.stderr, "stderr").to.equal(cli.stderr);
      expect(asData(socket.stdout), "stdout").to.deep.equal(asData(cli.stdout));
    });
  }

  const sh = (script: string, ...flags: string[]) => [
    "exec",
    ...flags,
    CONTAINER,
    "sh",
    "-c",
    script,
  ];
  const execs: [string, string[], RunOptions][] = [
    [
      "stdin, both outputs, an exit code",
      sh("cat; echo err >&2; exit 3", "-i"),
      { input: "a\nü\n" },
    ],
    ["stdin as a buffer", sh("wc -c", "-i"), { input: Buffer.alloc(70000, 1) }],
    ["-i with no input: EOF at once", sh("cat", "-i"), {}],
    ["input without -i is not sent", sh("cat"), { input: "not sent" }],
    [
      "-e, -u, -w",
      sh('echo "$A|$B"; id -u; pwd', "-e", "A=1", "-e", "B=x=y", "-u", "1000", "-w", "/tmp"),
      {},
    ],
    [
      "output over many frames",
      sh("head -c 300000 /dev/zero | tr '\\0' a; head -c 70000 /dev/zero | tr '\\0' b >&2"),
      {},
    ],
    ["a command that is not there", ["exec", CONTAINER, "no-such-command"], {}],
    ["killed by a signal", sh("kill -9 $$"), {}],
    ["a container that is not there", ["exec", "e2e-engineapi-missing", "true"], {}],
    ["a container that is not running", ["exec", STOPPED, "true"], {}],
  ];
  for (const [what, args, options] of execs) {
    it(`docker exec: ${what}`, async function () {
      const { cli, socket } = await both(args, options);
      expect(socket).to.deep.equal(cli);
    });
  }

  it("a running container's ps line is there, and is gone once it is removed", async function () {
    const listed = await docker(["ps", "-aq", "--filter", `label=${LABELS[0]}`]);
    expect(listed.stdout.trim()).to.have.length(12);
    await docker(["rm", "-f", CONTAINER]);
    const { cli, socket } = await both(["ps", "-aq", "--filter", `label=${LABELS[0]}`]);
    expect(socket).to.deep.equal(cli);
    expect(socket.stdout).to.equal("");
  });
});

/** `value` with every null, empty list and empty object left out. */
function withoutEmpty(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.length ? value.map(withoutEmpty) : undefined;
  }
  if (value && typeof value === "object") {
    const kept = Object.entries(value)
      .map(([key, inner]) => [key, withoutEmpty(inner)] as const)
      .filter(([, inner]) => inner !== undefined);
    return kept.length ? Object.fromEntries(kept) : undefined;
  }
  return value === null ? undefined : value;
}

/**
 * The network-less helpers edms-ops creates on the socket (ops/engine/engineCreate.ts) are the containers the
 * CLI creates for the same argv, but for their disabled network; and run through `docker()` they give what
 * `docker run` gives.
 */
describe("e2e: helpers created on the engine socket equal the docker CLI's", function () {
  const NAMES = ["e2e-engineapi-cli", "e2e-engineapi-api"];
  const STAGE = "e2e-engineapi-stage";
  const cleanup = async () => {
    await docker(["rm", "-f", "-v", ...NAMES], { allowFailure: true });
    await docker(["volume", "rm", "-f", VOLUME, STAGE], { allowFailure: true });
  };
  before(cleanup);
  after(cleanup);
  // A failed test leaves no container (named or a run's) for the next one's "nothing left behind" to find.
  afterEach(async () => {
    const left = await docker(["ps", "-aq", "--filter", "label=edms.stack=engineapi"]);
    const ids = left.stdout.split("\n").filter(Boolean);
    await docker(["rm", "-f", "-v", ...NAMES, ...ids], { allowFailure: true });
  });

  /** Every flag dockerRun.ts writes, as the lock container and the toolbox write them. */
  const spec = (name?: string): ContainerSpec => ({
    image: IMAGE,
    args: ["-euc", 'cat; echo "$A" >&2; ls /sys/class/net; exit 3', "edms-ops", "x y"],
    name,
    stdin: true,
    remove: true,
    logging: true,
    network: "none",
    user: "0",
    entrypoint: "sh",
    labels: { "edms.stack": "engineapi", "edms.role": "probe=odd" },
    env: ["A=1=2"],
    mounts: [
      { volume: VOLUME, path: "/backups" },
      { volume: VOLUME, path: "/ro", readOnly: true },
      { volume: STAGE, path: "/stage", labels: { "edms.role": "stage", "edms.stack": "x" } },
    ],
    scratchPaths: ["/edms"],
    confinement: { capabilities: ["CHOWN", "SETUID"], tmpfs: ["/tmp"], readOnly: true },
    limits: { memoryMb: 96, pids: 64 },
  });

  it("the create body: every setting of the CLI's container, the network disabled", async function () {
    const args = dockerRunArgs(spec(NAMES[0]));
    await docker(["create", ...args.slice(1)]);
    const body = createSpec(dockerRunArgs(spec(NAMES[1])))!.body;
    const created = await request(
      localSocket()!,
      "POST",
      `/containers/create?name=${NAMES[1]}`,
      body,
    );
    expect(created?.status, created?.body).to.equal(201);
    const [cli, api] = await Promise.all(
      NAMES.map(
        async (name) => JSON.parse((await docker(["container", "inspect", name])).stdout)[0],
      ),
    );
    // `docker create` attaches stdout and stderr (and stdin with -i) as `run` does.
    expect(api.Config.NetworkDisabled).to.equal(true);
    delete api.Config.NetworkDisabled;
    delete cli.Config.NetworkDisabled;
    for (const key of ["Hostname"]) {
      delete api.Config[key];
      delete cli.Config[key];
    }
    expect(api.Config).to.deep.equal(cli.Config);
    // The CLI sends empty lists where the body leaves them out (null): the same to the engine. The CLI's
    // order of -v binds is a Go map's, different from run to run: the engine mounts them by target.
    for (const config of [api.HostConfig, cli.HostConfig]) {
      config.Binds?.sort();
    }
    expect(withoutEmpty(api.HostConfig)).to.deep.equal(withoutEmpty(cli.HostConfig));
    expect(api.Mounts.length).to.equal(4);
  });

  const runs: [string, ContainerSpec, RunOptions][] = [
    ["stdin, both outputs, an exit code, only loopback", spec(), { input: "in\nü\n" }],
    ["stdin as a buffer", spec(), { input: Buffer.alloc(70000, 1) }],
    ["-i with no input: EOF at once", spec(), {}],
    [
      "output over many frames, no stdin",
      {
        ...spec(),
        stdin: false,
        args: ["-c", "head -c 300000 /dev/zero | tr '\\0' a; head -c 70000 /dev/zero >&2"],
      },
      {},
    ],
    ["killed by a signal", { ...spec(), args: ["-c", "kill -9 $$"] }, {}],
    [
      "an entrypoint that is not there",
      { ...spec(), args: [], entrypoint: "/no-such-command" },
      {},
    ],
  ];
  for (const [what, container, options] of runs) {
    it(`docker run: ${what}`, async function () {
      const { cli, socket } = await both(dockerRunArgs(container), options);
      expect(socket).to.deep.equal(cli);
      // The socket's run leaves nothing behind: --rm waited for as the CLI waits for it.
      const left = await docker(["ps", "-aq", "--filter", "label=edms.stack=engineapi"]);
      expect(left.stdout).to.equal("");
    });
  }

  it("docker run: a stream on stdin stays on the CLI, and is read whole", async function () {
    const input = Readable.from([Buffer.from("a"), Buffer.from("b\n")]);
    const ran = await docker(dockerRunArgs(spec()), { input, allowFailure: true });
    expect(ran.code).to.equal(3);
    expect(ran.stdout).to.equal("ab\nlo\n");
  });

  it("docker run -d: started, its id answered; a name in use is the CLI's own conflict", async function () {
    const detached: ContainerSpec = {
      ...spec(NAMES[1]),
      detach: true,
      stdin: false,
      remove: false,
      args: ["-c", "sleep 60"],
    };
    await docker(["rm", "-f", "-v", NAMES[1]], { allowFailure: true });
    const started = await docker(dockerRunArgs(detached));
    expect(started.stdout).to.match(/^[0-9a-f]{64}\n$/);
    const running = await docker(["container", "inspect", NAMES[1]]);
    const [inspected] = JSON.parse(running.stdout);
    expect(inspected.State.Running).to.equal(true);
    // Created on the socket: the CLI cannot disable a container's network.
    expect(inspected.Config.NetworkDisabled).to.equal(true);
    const again = await docker(dockerRunArgs(detached), { allowFailure: true });
    expect(again.code).to.equal(125);
    expect(again.stderr).to.match(/Conflict|already in use/);
  });
});
