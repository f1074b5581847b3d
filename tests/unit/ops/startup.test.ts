/**
 * edms-ops starts from compiled JavaScript without @pulumi (design: "compiled, no @pulumi at run time"), and
 * the policy pack uses @pulumi/policy alone. Checked on require.cache of a fresh process: what actually loads,
 * not what the imports say.
 */
import { expect } from "chai";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ensureCliBuilt } from "../../harness/build";
import { REPO_ROOT } from "../../harness/mocks";

/** The files a fresh node process has loaded after running `script`. */
function loadedBy(script: string, preload: string[] = []): string[] {
  const out = execFileSync(
    process.execPath,
    [
      ...preload.flatMap((p) => ["-r", p]),
      "-e",
      `${script}\nconsole.log(JSON.stringify(Object.keys(require.cache)));`,
    ],
    { cwd: REPO_ROOT, encoding: "utf8" },
  );
  return JSON.parse(out.trim().split("\n").pop()!) as string[];
}

describe("edms-ops start-up", function () {
  before(function () {
    this.timeout(120000);
    ensureCliBuilt();
  });

  it("loading the CLI and building its command tree loads no @pulumi module and no TypeScript", function () {
    const loaded = loadedBy(
      `require(${JSON.stringify(path.join(REPO_ROOT, "build/ops/cli.js"))}).buildProgram();`,
    );
    // What it must load, so an empty list cannot pass.
    expect(loaded).to.include(path.join(REPO_ROOT, "build/ops/commands/restore.js"));
    expect(loaded).to.include(path.join(REPO_ROOT, "build/model/settings.js"));
    expect(loaded.filter((f) => f.includes("/node_modules/@pulumi/"))).to.deep.equal([]);
    expect(loaded.filter((f) => /\/node_modules\/(typescript|ts-node)\//.test(f))).to.deep.equal(
      [],
    );
    expect(loaded.filter((f) => f.startsWith(path.join(REPO_ROOT, "components")))).to.deep.equal(
      [],
    );
  });

  it("the one-file bundle ops/bin/edms-ops.js runs holds the same: no @pulumi module, no TypeScript, nothing of components/", function () {
    // esbuild marks each module it bundles with a `// <path>` line.
    const modules = fs
      .readFileSync(path.join(REPO_ROOT, "build/cli/edms-ops.cjs"), "utf8")
      .split("\n")
      .filter((line) => /^\/\/ [\w@./-]+\.[cm]?[jt]s$/.test(line))
      .map((line) => line.slice(3));
    expect(modules).to.include("ops/commands/restore.ts").and.include("model/containers.ts");
    expect(
      modules.filter((m) => /node_modules\/(@pulumi|typescript|ts-node)\/|^components\//.test(m)),
    ).to.deep.equal([]);
    const started = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), "--help"],
      { encoding: "utf8" },
    );
    expect(started.status, started.stderr).to.equal(0);
    expect(started.stdout).to.contain("restore");
  });

  it("the policy pack (index.ts and what it imports) requires @pulumi/policy and no other @pulumi package", function () {
    // Every require made by a file of ours, recorded as it happens; PolicyPack is swapped for a no-op so
    // loading index.ts does not start the pack's gRPC server.
    const out = execFileSync(
      process.execPath,
      [
        "-r",
        "ts-node/register/transpile-only",
        "-e",
        `const Module = require("module");
         const load = Module._load;
         const edges = [];
         Module._load = function (request, parent) {
           const exported = load.apply(this, arguments);
           if (parent && parent.filename && !parent.filename.includes("/node_modules/")) {
             edges.push([parent.filename, request]);
           }
           return request === "@pulumi/policy" ? { ...exported, PolicyPack: class {} } : exported;
         };
         require(${JSON.stringify(path.join(REPO_ROOT, "policy/index.ts"))});
         console.log(JSON.stringify(edges));`,
      ],
      { cwd: REPO_ROOT, encoding: "utf8" },
    );
    const edges = (JSON.parse(out.trim().split("\n").pop()!) as [string, string][]).map(
      ([from, request]) => [path.relative(REPO_ROOT, from), request],
    );
    const files = new Set(edges.map(([from]) => from));
    expect([...files]).to.include.members(["policy/index.ts", "policy/policies.ts"]);
    const pulumi = new Set(edges.map(([, r]) => r).filter((r) => r.startsWith("@pulumi/")));
    expect([...pulumi]).to.deep.equal(["@pulumi/policy"]);
    expect([...files].filter((f) => f.startsWith("components/"))).to.deep.equal([]);
  });

  it("the installed bin says how to build when build/ is missing", function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-nobuild-"));
    fs.mkdirSync(path.join(dir, "ops/bin"), { recursive: true });
    fs.copyFileSync(
      path.join(REPO_ROOT, "ops/bin/edms-ops.js"),
      path.join(dir, "ops/bin/edms-ops.js"),
    );
    const result = spawnSync(process.execPath, [path.join(dir, "ops/bin/edms-ops.js"), "--help"], {
      encoding: "utf8",
    });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(result.status).to.equal(1);
    expect(result.stderr).to.contain("edms-ops: not built yet (build/cli/edms-ops.cjs is missing)");
    expect(result.stderr).to.contain("Run `npm run build`");
  });
});
