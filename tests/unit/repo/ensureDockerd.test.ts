import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT } from "../../harness/codebase";

// scripts/ensure-dockerd.sh against stub docker and dockerd commands and a scratch run folder: a machine restored
// from a snapshot carries pid files of an engine that no longer runs, and dockerd refuses to start beside one.
describe("scripts/ensure-dockerd.sh", () => {
  let dir: string;
  let run: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ensure-dockerd-"));
    run = path.join(dir, "run");
    fs.mkdirSync(path.join(run, "docker", "containerd"), { recursive: true });
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    // The engine answers once the stub dockerd has started; like dockerd, it refuses to start beside a pid file.
    stub(bin, "docker", `[ "$1" = info ] && [ -e "${dir}/up" ]`);
    stub(
      bin,
      "dockerd",
      `[ -e "${run}/docker.pid" ] && { echo "pid file found" >&2; exit 1; }
[ -e "${run}/docker/containerd/containerd.pid" ] && { echo "containerd pid file kept" >&2; exit 1; }
echo $$ > "${run}/docker.pid"; touch "${dir}/up"`,
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function stub(bin: string, name: string, body: string): void {
    fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }

  function ensure(): { status: number | null; out: string } {
    const result = spawnSync("bash", [path.join(REPO_ROOT, "scripts/ensure-dockerd.sh")], {
      encoding: "utf8",
      timeout: 30_000,
      env: {
        PATH: `${path.join(dir, "bin")}:/usr/bin:/bin`,
        EDMS_DOCKERD_RUN_DIR: run,
        EDMS_DOCKERD_LOG: path.join(dir, "dockerd.log"),
      },
    });
    return { status: result.status, out: result.stdout + result.stderr };
  }

  it("removes a pid file whose process is gone, and a containerd one naming another process, then starts", () => {
    const gone = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
    fs.writeFileSync(path.join(run, "docker.pid"), gone);
    // pid 1 is alive but is no containerd.
    fs.writeFileSync(path.join(run, "docker", "containerd", "containerd.pid"), "1");
    const { status, out } = ensure();
    expect(out).to.include("dockerd started");
    expect(out).to.include("removing stale");
    expect(status).to.equal(0);
  });

  it("removes a pid file that names a live process of another name (a pid reused after a restore)", () => {
    fs.writeFileSync(path.join(run, "docker.pid"), String(process.pid));
    const { status, out } = ensure();
    expect(out).to.include("dockerd started");
    expect(status).to.equal(0);
  });

  it("leaves everything alone when the engine answers", () => {
    fs.writeFileSync(path.join(dir, "up"), "");
    fs.writeFileSync(path.join(run, "docker.pid"), "1");
    const { status, out } = ensure();
    expect(out).to.include("already running");
    expect(status).to.equal(0);
    expect(fs.readFileSync(path.join(run, "docker.pid"), "utf8")).to.equal("1");
  });
});
