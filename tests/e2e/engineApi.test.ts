/**
 * The reads edms-ops asks of the local engine's socket (ops/engine/engineApi.ts) give, on a real engine, what
 * the docker CLI gives for the same argv: exit code, stderr, and stdout (the same JSON, or the same lines).
 * No stack is deployed; one container, one volume and one image of the test set are enough.
 */
import { expect } from "chai";
import { docker } from "../../ops/engine/docker";

const CONTAINER = "e2e-engineapi-probe";
const VOLUME = "e2e-engineapi-probe";
const IMAGE = "edms-test/backup:restic-0.18-busybox";
const LABELS = ["edms.stack=engineapi", "edms.role=probe=odd"];

async function both(args: string[]) {
  process.env.EDMS_DOCKER_API = "off";
  const cli = await docker(args, { allowFailure: true }).finally(
    () => delete process.env.EDMS_DOCKER_API,
  );
  const socket = await docker(args, { allowFailure: true });
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
    await docker(["rm", "-f", "-v", CONTAINER], { allowFailure: true });
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

  it("a running container's ps line is there, and is gone once it is removed", async function () {
    const listed = await docker(["ps", "-aq", "--filter", `label=${LABELS[0]}`]);
    expect(listed.stdout.trim()).to.have.length(12);
    await docker(["rm", "-f", CONTAINER]);
    const { cli, socket } = await both(["ps", "-aq", "--filter", `label=${LABELS[0]}`]);
    expect(socket).to.deep.equal(cli);
    expect(socket.stdout).to.equal("");
  });
});
