/**
 * The scratch server's template scripts, run by dash and by busybox's sh with busybox's own applets (the
 * alpine postgres images' userland): the builder publishes a cluster only once its server answered and
 * stopped cleanly, and a scratch server copies only a published one, falling back to its own initdb.
 * A node script plays the image's entrypoint (a server that answers once its data directory is made).
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BUILD_SCRIPT, SCRATCH_WRAPPER } from "../../../ops/backup/scratchTemplate";
import { testShells } from "../../harness/shells";

/** A server that makes PGDATA, answers (the ready file pg_isready looks for) and exits 0 on SIGINT. */
const FAKE_SERVER = `
const fs = require("fs");
const data = process.env.PGDATA;
if (process.env.FAKE_FAIL) process.exit(1);
fs.mkdirSync(data, { recursive: true });
fs.writeFileSync(data + "/PG_VERSION", "15\\n");
fs.writeFileSync(data + "/base", "cluster");
fs.writeFileSync(process.env.READY_FILE, "");
process.on("SIGINT", () => {
  fs.writeFileSync(data + "/stopped", "clean");
  process.exit(process.env.FAKE_UNCLEAN ? 1 : 0);
});
setTimeout(() => process.exit(2), 30000);
`;

describe("scratch server template scripts", function () {
  this.timeout(20_000);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "scratch-template-"));
  const stubs = path.join(root, "stubs");
  fs.mkdirSync(stubs);
  const ready = path.join(root, "ready");
  fs.writeFileSync(path.join(stubs, "pg_isready"), `#!/bin/sh\n[ -f "${ready}" ]\n`, {
    mode: 0o755,
  });
  fs.writeFileSync(path.join(root, "server.js"), FAKE_SERVER);
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  const tools = ["cat", "mkdir", "cp", "rm", "sleep", "mv", "printf", "ls"];
  for (const shell of testShells(root, tools)) {
    const env = (extra: NodeJS.ProcessEnv = {}) => ({
      ...shell.env,
      PATH: `${stubs}:${shell.env.PATH}`,
      READY_FILE: ready,
      ...extra,
    });
    const build = (template: string, id: string, extra: NodeJS.ProcessEnv = {}) => {
      fs.rmSync(ready, { force: true });
      return spawnSync(
        "sh",
        ["-c", BUILD_SCRIPT, "t", template, id, process.execPath, path.join(root, "server.js")],
        { env: env(extra), encoding: "utf8" },
      );
    };
    const scratch = (template: string, pgdata: string) => {
      const seen = path.join(root, `seen-${shell.name}`);
      fs.rmSync(seen, { force: true });
      const run = spawnSync(
        "sh",
        ["-c", SCRATCH_WRAPPER, "s", template, "sh", "-c", 'ls "$PGDATA" > "$1"', "cmd", seen],
        { env: env({ PGDATA: pgdata }), encoding: "utf8" },
      );
      expect(run.status, run.stderr).to.equal(0);
      return fs.readFileSync(seen, "utf8").split("\n").filter(Boolean).sort();
    };
    const fresh = (name: string) => fs.mkdtempSync(path.join(root, `${shell.name}-${name}-`));
    /** An empty data directory, as the scratch server's anonymous volume is. */
    const emptyData = () => {
      const dir = path.join(fresh("pg"), "data");
      fs.mkdirSync(dir);
      return dir;
    };

    it(`${shell.name}: the builder publishes its folder only after its server answered and stopped cleanly`, function () {
      const template = fresh("built");
      const first = build(template, "aa01");
      expect(first.status, first.stderr).to.equal(0);
      expect(fs.readFileSync(path.join(template, "current"), "utf8")).to.equal("build-aa01\n");
      expect(fs.readFileSync(path.join(template, "build-aa01/data/stopped"), "utf8")).to.equal(
        "clean",
      );
      // A server that dies before it answers, or whose stop is not clean: nothing published, the earlier
      // template still named; and neither waits out the minute a live server gets.
      for (const fault of ["FAKE_FAIL", "FAKE_UNCLEAN"]) {
        const started = Date.now();
        const failed = build(template, "bb02", { [fault]: "1" });
        expect(failed.status, fault).to.not.equal(0);
        expect(Date.now() - started, fault).to.be.below(15_000);
        expect(fs.readFileSync(path.join(template, "current"), "utf8")).to.equal("build-aa01\n");
      }
    });

    it(`${shell.name}: a scratch server copies the published cluster, else starts empty (its own initdb)`, function () {
      const template = fresh("use");
      expect(build(template, "dd04").status).to.equal(0);
      expect(scratch(template, emptyData())).to.deep.equal(["PG_VERSION", "base", "stopped"]);
      // Nothing published, or a name that is no builder's folder (each of these reaches a whole cluster but
      // by a path out of or around the folder naming): nothing copied.
      for (const named of [null, "../ELSEWHERE/build-00", "build-00/../build-00", "build-zz"]) {
        const elsewhere = fresh("odd");
        for (const dir of ["build-00", "build-zz"]) {
          fs.mkdirSync(path.join(elsewhere, dir, "data"), { recursive: true });
          fs.writeFileSync(path.join(elsewhere, dir, "data/PG_VERSION"), "15\n");
        }
        if (named !== null) {
          const name = named.replace("ELSEWHERE", path.basename(elsewhere));
          fs.writeFileSync(path.join(elsewhere, "current"), `${name}\n`);
        }
        expect(scratch(elsewhere, emptyData()), String(named)).to.deep.equal([]);
      }
      // A data directory that already holds a cluster is left as it is.
      const kept = emptyData();
      fs.writeFileSync(path.join(kept, "PG_VERSION"), "14\n");
      expect(scratch(template, kept)).to.deep.equal(["PG_VERSION"]);
      expect(fs.readFileSync(path.join(kept, "PG_VERSION"), "utf8")).to.equal("14\n");
    });
  }
});
