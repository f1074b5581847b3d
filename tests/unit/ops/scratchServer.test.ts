/**
 * verify's scratch server holds a copy of the database with trust auth: edms-ops ended by a signal (Ctrl-C, a
 * dropped ssh session) removes it first. Run in a process of its own, against a docker that only logs what it
 * is asked (no engine), whose `exec` (the wait for the server) never ends.
 */
import { expect } from "chai";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT } from "../../harness/mocks";

const CHILD = `
const { validateSettings } = require("./model/settings");
const { scratchRemovedOnSignal } = require("./ops/backup/scratchServer");
const scratch = scratchRemovedOnSignal(validateSettings("dev", { environment: "dev", version: "1.0.0" }));
scratch.ready.then(() => console.log("ready"), () => undefined);
console.log(scratch.name);
`;

describe("verify's scratch server on a signal", function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-scratch-signal-"));
    fs.mkdirSync(path.join(dir, "bin"));
    fs.writeFileSync(
      path.join(dir, "bin", "docker"),
      `#!/bin/sh\necho "$*" >> "${dir}/docker.log"\n[ "$1" != exec ] || exec sleep 30\nexit 0\n`,
      { mode: 0o755 },
    );
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`${signal} while it starts: removed by name, then edms-ops exits 128 + the signal`, async function () {
      const log = path.join(dir, "docker.log");
      fs.writeFileSync(log, "");
      const child = spawn(
        process.execPath,
        ["-r", "ts-node/register/transpile-only", "-e", CHILD],
        {
          cwd: REPO_ROOT,
          // Another engine than the local socket: every call goes through the docker CLI, here the fake one.
          env: {
            ...process.env,
            PATH: `${dir}/bin:${process.env.PATH}`,
            DOCKER_HOST: "tcp://127.0.0.1:9",
          },
        },
      );
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) =>
        child.on("exit", (code) => resolve(code)),
      );
      const lines = () => fs.readFileSync(log, "utf8").split("\n").filter(Boolean);
      for (let i = 0; i < 400 && !lines().some((l) => l.startsWith("exec ")); i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(
        lines().some((l) => l.startsWith("exec ")),
        "the wait for the server began",
      ).to.equal(true);
      child.kill(signal);
      const code = await exited;
      const name = stdout.trim().split("\n")[0];
      expect(name).to.match(/^edms-scratch-[0-9a-f]{6}$/);
      expect(code).to.equal(128 + os.constants.signals[signal]);
      const run = lines().findIndex((l) => l.startsWith("run ") && l.includes(`--name ${name}`));
      const removed = lines().indexOf(`rm -f -v ${name}`);
      expect(run, "started").to.be.at.least(0);
      expect(removed, "removed after it was started").to.be.greaterThan(run);
      expect(stdout).not.to.include("ready");
    });
  }
});
