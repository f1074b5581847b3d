import { expect } from "chai";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { PassThrough } from "stream";
import { docker, socketServes } from "../../../ops/engine/docker";
import { answerLocally, localSocket } from "../../../ops/engine/engineApi";
import { execSpec } from "../../../ops/engine/engineExec";

describe("engine API on the local socket: which engine, like the docker CLI", function () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-engine-"));
  const config = (name: string, body: string) => {
    fs.mkdirSync(path.join(dir, name), { recursive: true });
    fs.writeFileSync(path.join(dir, name, "config.json"), body);
    return path.join(dir, name);
  };
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("DOCKER_HOST first: unix:// its path, another scheme the CLI; empty or unset, the context decides", function () {
    const other = config("ctx", '{"currentContext": "remote"}');
    expect(localSocket({ DOCKER_CONFIG: path.join(dir, "none") })).to.equal("/var/run/docker.sock");
    // An empty DOCKER_HOST (or DOCKER_CONTEXT) counts as unset: the config file's context decides.
    expect(localSocket({ DOCKER_HOST: "", DOCKER_CONFIG: other })).to.equal(undefined);
    expect(localSocket({ DOCKER_CONTEXT: "", DOCKER_CONFIG: other })).to.equal(undefined);
    expect(localSocket({ DOCKER_HOST: "", DOCKER_CONFIG: path.join(dir, "none") })).to.equal(
      "/var/run/docker.sock",
    );
    expect(localSocket({ DOCKER_HOST: "unix:///run/user/docker.sock" })).to.equal(
      "/run/user/docker.sock",
    );
    for (const host of ["ssh://ops@host", "tcp://10.0.0.2:2376", "unix://", "npipe:////./pipe/x"]) {
      expect(localSocket({ DOCKER_HOST: host }), host).to.equal(undefined);
    }
  });

  it("then DOCKER_CONTEXT, then the config file's currentContext: any context but default goes to the CLI", function () {
    const none = path.join(dir, "none");
    expect(localSocket({ DOCKER_CONTEXT: "remote", DOCKER_CONFIG: none })).to.equal(undefined);
    expect(localSocket({ DOCKER_CONTEXT: "default", DOCKER_CONFIG: none })).to.equal(
      "/var/run/docker.sock",
    );
    expect(
      localSocket({ DOCKER_CONFIG: config("remote", '{"currentContext":"remote"}') }),
    ).to.equal(undefined);
    expect(localSocket({ DOCKER_CONFIG: config("dflt", '{"currentContext":"default"}') })).to.equal(
      "/var/run/docker.sock",
    );
    expect(localSocket({ DOCKER_CONFIG: config("auths", '{"auths":{}}') })).to.equal(
      "/var/run/docker.sock",
    );
    // A config the CLI may read differently: the CLI decides.
    expect(localSocket({ DOCKER_CONFIG: config("broken", "{not json") })).to.equal(undefined);
    expect(localSocket({ EDMS_DOCKER_API: "off" })).to.equal(undefined);
  });
});

describe("engine API on the local socket: what it answers, against an engine that records its requests", function () {
  const socket = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "edms-sock-")), "engine.sock");
  const asked: string[] = [];
  const containers: Record<string, object> = {
    web: { Id: "a".repeat(64), Name: "/web", State: { Running: true } },
  };
  let status = 0;
  const server = http.createServer((request, response) => {
    const url = request.url ?? "";
    asked.push(`${request.method} ${url}`);
    const reply = (code: number, body: unknown) => {
      response.writeHead(status || code, { "Content-Type": "application/json" });
      response.end(JSON.stringify(body));
    };
    const inspected = /^\/containers\/([^/]+)\/json$/.exec(url);
    if (inspected) {
      const found = containers[inspected[1]];
      reply(found ? 200 : 404, found ?? { message: `No such container: ${inspected[1]}` });
    } else if (url.startsWith("/containers/json?")) {
      reply(200, [{ Id: "b".repeat(64) }, { Id: "c".repeat(64) }]);
    } else if (url === "/version") {
      reply(200, { Version: "20.10.24" });
    } else {
      reply(404, { message: "page not found" });
    }
  });
  const env = { ...process.env };
  before(async function () {
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    process.env.DOCKER_HOST = `unix://${socket}`;
    delete process.env.EDMS_DOCKER_API;
  });
  beforeEach(() => {
    asked.length = 0;
    status = 0;
  });
  after(async function () {
    process.env = env;
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(path.dirname(socket), { recursive: true, force: true });
  });

  it("ps -aq with filters: one request, label values with = in them, short ids newest first", async function () {
    const answer = await answerLocally([
      "ps",
      "-aq",
      "--filter",
      "label=edms.stack=a=b",
      "--filter",
      "label=edms.role=web",
      "--filter",
      "status=exited",
    ]);
    expect(answer).to.deep.equal({
      code: 0,
      stdout: `${"b".repeat(12)}\n${"c".repeat(12)}\n`,
      stderr: "",
    });
    const [, query] = asked[0].split("?");
    const params = new URLSearchParams(query);
    expect(params.get("all")).to.equal("1");
    expect(JSON.parse(params.get("filters") as string)).to.deep.equal({
      label: { "edms.stack=a=b": true, "edms.role=web": true },
      status: { exited: true },
    });
  });

  it("container inspect: the found ones as a JSON array, the daemon's reason for each missing one, exit 1", async function () {
    const answer = await answerLocally(["container", "inspect", "web", "gone"]);
    expect(answer?.code).to.equal(1);
    expect(JSON.parse(answer?.stdout as string)).to.deep.equal([containers.web]);
    expect(answer?.stderr).to.equal("Error response from daemon: No such container: gone\n");
    const failed = await docker(["container", "inspect", "gone"]).catch((e: Error) => e);
    expect(String(failed)).to.match(
      /docker container inspect gone failed \(exit 1\):\nError response from daemon: No such container: gone/,
    );
    expect((await docker(["container", "inspect", "gone"], { allowFailure: true })).code).to.equal(
      1,
    );
  });

  it("an answer the CLI would not give the same way goes to the CLI: nothing asked of the socket", async function () {
    const shapes = [
      ["container", "inspect", "--format", "{{.State.Running}}", "web"],
      ["inspect", "web"],
      ["ps"],
      ["ps", "-a"],
      ["ps", "-aq", "--format", "{{.ID}}"],
      ["ps", "-aq", "--filter", "label"],
      ["container", "inspect"],
      ["container", "inspect", "../volumes/x"],
      ["image", "inspect", "app:1"],
      ["image", "inspect", "../x", "--format", "{{.Id}}"],
      ["volume", "ls", "-q"],
      ["exec", "web", "true"],
      ["version"],
    ];
    for (const args of shapes) {
      expect(await answerLocally(args), args.join(" ")).to.equal(undefined);
    }
    expect(asked).to.deep.equal([]);
  });

  it("a status other than found or not found, or no socket at all, goes to the CLI", async function () {
    status = 500;
    expect(await answerLocally(["container", "inspect", "web"])).to.equal(undefined);
    expect(await answerLocally(["version", "--format", "{{.Server.Version}}"])).to.equal(undefined);
    process.env.DOCKER_HOST = `unix://${socket}.missing`;
    try {
      expect(await answerLocally(["container", "inspect", "web"])).to.equal(undefined);
    } finally {
      process.env.DOCKER_HOST = `unix://${socket}`;
    }
    status = 0;
    expect(await answerLocally(["version", "--format", "{{.Server.Version}}"])).to.deep.equal({
      code: 0,
      stdout: "20.10.24\n",
      stderr: "",
    });
  });
});

describe("engine API on the local socket: which docker exec it runs itself", function () {
  it("exec with -i, -e NAME=value, -u and -w: the exec the engine is asked for", function () {
    expect(
      execSpec(["exec", "-i", "-e", "A=1=2", "--user", "70", "-w", "/tmp", "db", "psql", "-X"]),
    ).to.deep.equal({
      container: "db",
      body: {
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Env: ["A=1=2"],
        Cmd: ["psql", "-X"],
        User: "70",
        WorkingDir: "/tmp",
      },
    });
    expect(execSpec(["exec", "db", "true"])?.body.AttachStdin).to.equal(false);
  });

  it("any other flag, an -e taken from the environment, no command or an odd name: the CLI", function () {
    for (const args of [
      ["exec", "-d", "db", "true"],
      ["exec", "-it", "db", "sh"],
      ["exec", "-t", "db", "sh"],
      ["exec", "--privileged", "db", "true"],
      ["exec", "-e", "PGPASSWORD", "db", "psql"],
      ["exec", "-u", "-i", "db", "true"],
      ["exec", "db"],
      ["exec", "-i"],
      ["exec", "../containers/x", "true"],
      ["run", "db", "true"],
    ]) {
      expect(execSpec(args), args.join(" ")).to.equal(undefined);
    }
  });

  it("a stream in or out, an abort signal, a held stdin or environment for the CLI: the CLI", function () {
    const exec = { input: "SELECT 1;", allowFailure: true, onLine: () => {} };
    expect(socketServes(exec, true)).to.equal(true);
    expect(socketServes({ input: Buffer.from("x"), env: {} }, true)).to.equal(true);
    // A read takes none of an exec's options.
    expect(socketServes(exec, false)).to.equal(false);
    expect(socketServes({ allowFailure: true }, false)).to.equal(true);
    for (const options of [
      { input: new PassThrough() },
      { stdout: new PassThrough() },
      { signal: new AbortController().signal },
      { holdStdin: true },
      { dockerHost: "ssh://x" },
      { env: { PGOPTIONS: "-c x=y" } },
    ]) {
      expect(socketServes(options, true), Object.keys(options)[0]).to.equal(false);
    }
  });
});
