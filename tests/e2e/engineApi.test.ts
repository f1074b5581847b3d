/**
 * The reads edms-ops asks of the local engine's socket (ops/engine/engineApi.ts) give, on a real engine, what
 * the docker CLI gives for the same argv: exit code, stderr, and stdout (the same JSON, or the same lines).
 * So do the execs it runs there (ops/engine/engineExec.ts): stdin, exit codes, both outputs, the CLI's
 * errors. No stack is deployed; two containers, one volume and one image of the test set are enough.
 */
import { expect } from "chai";
import { docker, RunOptions } from "../../ops/engine/docker";

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
