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
import {
  BUILD_SCRIPT,
  SCRATCH_WRAPPER,
  scratchTemplate,
} from "../../../ops/backup/scratchTemplate";
import { validateSettings } from "../../../model/settings";
import * as dockerLib from "../../../ops/engine/docker";
import { testShells } from "../../harness/shells";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

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

describe("scratch template: when it is used, made again or left alone", function () {
  const settings = validateSettings("staging", { environment: "staging", version: "1.0.0" });
  const id = `sha256:${"cd".repeat(32)}`;
  const volume = "edms-scratch-template-cdcdcdcdcdcd";
  const saved = dockerLib.docker;
  after(() => {
    (dockerLib as Mutable<typeof dockerLib>).docker = saved;
  });

  /**
   * A Docker where `volumes` exist (all of them in use by a container when `inUse`) and the builder's run
   * answers `build`; the calls it got, in order.
   */
  function engine(volumes: string[], build = { code: 0, stderr: "" }, inUse = false): string[][] {
    const calls: string[][] = [];
    const present = new Set(volumes);
    (dockerLib as Mutable<typeof dockerLib>).docker = (async (args: readonly string[]) => {
      calls.push([...args]);
      const [verb, sub, name] = args;
      if (verb === "image") {
        const answer = JSON.stringify([id, ["docker-entrypoint.sh"], ["postgres"]]);
        return { code: 0, stdout: answer, stderr: "" };
      }
      if (verb === "volume" && (sub === "inspect" || sub === "rm")) {
        const there = present.has(name);
        if (sub === "rm" && there && inUse) {
          return { code: 1, stdout: "", stderr: `Error: remove ${name}: volume is in use` };
        }
        if (sub === "rm") {
          present.delete(name);
        }
        return there
          ? { code: 0, stdout: "", stderr: "" }
          : { code: 1, stdout: "", stderr: `Error: No such volume: ${name}` };
      }
      if (verb === "run" && args.includes(`${volume}-build`)) {
        return { code: build.code, stdout: "", stderr: build.stderr };
      }
      return { code: 0, stdout: "", stderr: "" };
    }) as typeof dockerLib.docker;
    return calls;
  }
  /** `run`, or the verb and its subcommand (`volume rm`). */
  const said = (calls: string[][]) =>
    calls.map((c) => (c[0] === "run" ? "run" : c.slice(0, 2).join(" ")));
  const removed = (calls: string[][]) =>
    calls.filter((c) => c[0] === "volume" && c[1] === "rm").map((c) => c[2]);

  it("a marked template beside its mark is used as it is: nothing removed, nothing built", async function () {
    const calls = engine([volume, `${volume}-ready`]);
    expect(await scratchTemplate(settings, "postgres:15")).to.deep.include({ volume, image: id });
    expect(said(calls)).to.not.include("run");
    expect(removed(calls)).to.deep.equal([]);
  });

  it("a template without its mark (a builder killed or failed) is removed and made again, then marked", async function () {
    const calls = engine([volume]);
    expect(await scratchTemplate(settings, "postgres:15")).to.deep.include({ volume });
    expect(removed(calls)).to.deep.equal([volume]);
    const made = calls.findIndex((c) => c[0] === "run");
    const marked = calls.findIndex((c) => c[0] === "volume" && c[1] === "create");
    expect(made, "built").to.be.above(-1);
    expect(calls[marked].at(-1), "marked after the build").to.equal(`${volume}-ready`);
    expect(marked).to.be.above(made);
  });

  it("a mark without its template is dropped and the template made again", async function () {
    const calls = engine([`${volume}-ready`]);
    expect(await scratchTemplate(settings, "postgres:15")).to.deep.include({ volume });
    expect(removed(calls)).to.deep.equal([`${volume}-ready`, volume]);
    expect(said(calls)).to.include("run");
  });

  it("a failed build leaves no template (initdb then); another builder's running one is left to it", async function () {
    let calls = engine([], { code: 1, stderr: "initdb: out of space" });
    expect(await scratchTemplate(settings, "postgres:15")).to.equal(undefined);
    expect(removed(calls)).to.deep.equal([volume, volume]);
    expect(said(calls)).to.not.include("volume create");
    calls = engine([], {
      code: 125,
      stderr: `Conflict. The container name "/${volume}-build" is already in use`,
    });
    expect(await scratchTemplate(settings, "postgres:15")).to.equal(undefined);
    expect(removed(calls), "only the check before the build").to.deep.equal([volume]);
  });

  it("a template volume in use (a scratch server copying it) is not made again under it", async function () {
    const calls = engine([volume], undefined, true);
    expect(await scratchTemplate(settings, "postgres:15")).to.equal(undefined);
    expect(said(calls)).to.not.include("run");
  });
});
