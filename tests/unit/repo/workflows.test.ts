/** The delivery rules, checked on the workflow files themselves. */
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { REPO_ROOT } from "../../harness/mocks";

const WORKFLOWS = path.join(REPO_ROOT, ".github/workflows");
type Step = {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
};
type Job = {
  environment?: string;
  env?: Record<string, string>;
  strategy?: { matrix?: { stack?: string[] } };
  steps: Step[];
};
type Workflow = {
  on: Record<string, any>;
  env?: Record<string, string>;
  jobs: Record<string, Job>;
};

const load = (file: string) =>
  YAML.parse(fs.readFileSync(path.join(WORKFLOWS, file), "utf8")) as Workflow;
const steps = (wf: Workflow) => Object.values(wf.jobs).flatMap((j) => j.steps);
const pulumiSteps = (wf: Workflow) =>
  steps(wf).filter((s) => s.uses?.startsWith("pulumi/actions@") && s.with?.command !== undefined);
const text = (file: string) => fs.readFileSync(path.join(WORKFLOWS, file), "utf8");
/** Any secret but the job's own GITHUB_TOKEN. */
const SECRET = /\$\{\{\s*secrets\.(?!GITHUB_TOKEN\b)\w+/;
const PINNED_PULUMI = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"))
  .devDependencies.pulumi as string;

/** Every file of the repository that is ours (not dependencies, not git internals). */
function repositoryFiles(dir = REPO_ROOT): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (["node_modules", ".git", ".pulumi-local"].includes(entry.name)) {
      return [];
    }
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? repositoryFiles(full) : [full];
  });
}

function readIfThere(file: string): string {
  try {
    return fs.readFileSync(file, "latin1");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return "";
    }
    throw err;
  }
}

describe("workflows", function () {
  const files = fs
    .readdirSync(WORKFLOWS)
    .filter((f) => f.endsWith(".yml"))
    .sort();

  it("every pulumi operation refreshes first (Pulumi.yaml `options.refresh: always`)", function () {
    // edms-ops reset/restore/switch stop or remove containers the program manages; the next `pulumi up` must
    // see that on the host instead of trusting the state (tests/e2e/deploy.test.ts 2b shows the difference).
    const project = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8"));
    expect(project.options).to.deep.equal({ refresh: "always" });
  });

  it("are the four the design names, and parse", function () {
    expect(files).to.deep.equal(["deploy.yml", "drift.yml", "preview.yml", "staging-reset.yml"]);
    files.forEach(load);
  });

  it("only ever name the staging and production stacks", function () {
    for (const file of files) {
      for (const step of pulumiSteps(load(file))) {
        const stack = String(step.with?.["stack-name"]);
        expect(stack, `${file}: ${step.name}`).to.match(
          /^(staging|production|\$\{\{ (matrix\.stack|env\.STACK) \}\})$/,
        );
      }
    }
    expect(load("preview.yml").jobs.preview)
      .to.have.nested.property("strategy.matrix.stack")
      .that.deep.equals(["staging"]);
    expect(load("drift.yml").jobs.drift)
      .to.have.nested.property("strategy.matrix.stack")
      .that.deep.equals(["staging", "production"]);
    const deployStack = load("deploy.yml").jobs.deploy.env?.STACK;
    expect(deployStack).to.equal(
      "${{ startsWith(github.ref, 'refs/tags/v') && 'production' || 'staging' }}",
    );
  });

  it("preview: on pull requests, staging only, with the target branch's policy pack, its diff commented on the PR", function () {
    const wf = load("preview.yml");
    expect(wf.on).to.have.property("pull_request");
    const [preview] = pulumiSteps(wf);
    expect(preview.with).to.include({
      command: "preview",
      policyPacks: ".base/policy",
      diff: true,
      "comment-on-pr": true,
    });
    const all = steps(wf);
    const base = all.find((s) => s.with?.path === ".base");
    expect(base?.with).to.include({
      ref: "${{ github.event.pull_request.base.sha }}",
      "persist-credentials": false,
    });
    const deps = all.findIndex((s) => s.run?.includes("npm ci --prefix .base/policy"));
    expect(deps).to.be.within(all.indexOf(base!) + 1, all.indexOf(preview) - 1);
    // The pull request's own build ran before the target branch's tree was there.
    const build = all.findIndex((s) => s.run?.includes("npm run build"));
    expect(build).to.be.below(all.indexOf(base!));
    const owners = fs.readFileSync(path.join(REPO_ROOT, ".github/CODEOWNERS"), "utf8");
    for (const guarded of [
      "/.github/",
      "/policy/",
      "/model/protection.ts",
      "/Pulumi.production.yaml",
    ]) {
      expect(owners).to.match(new RegExp(`^${guarded.replace(/[.]/g, "\\.")}\\s+@`, "m"));
    }
  });

  it("deploy: main → staging, release tags → production, rollback with a backup first on failure", function () {
    const wf = load("deploy.yml");
    expect(wf.on.push).to.deep.equal({ branches: ["main"], tags: ["v*"] });
    const [preview, up] = pulumiSteps(wf);
    // The policy pack judges the whole stack before anything changes; `up` (no preview of its own
    // through the automation API) only after a passing preview of the same stack and config.
    expect(preview.with).to.include({ command: "preview", policyPacks: "policy" });
    expect(up.with).to.include({ command: "up", policyPacks: "policy" });
    for (const key of ["stack-name", "config-map", "cloud-url"]) {
      expect(preview.with?.[key], key).to.equal(up.with?.[key]);
    }
    const rollback = steps(wf).find((s) => s.run?.includes("edms-ops rollback"));
    // Only after `up` itself failed, and only when that run changed the release.
    expect((up as { id?: string }).id).to.equal("up");
    expect(rollback?.if).to.equal("failure() && steps.up.outcome == 'failure'");
    expect(rollback?.run).to.contain("--previous --after-failed-deploy --backup-first");
    expect(rollback?.run).to.contain('[ "$STACK" = production ] && echo --confirm production');
  });

  it("destroy runs only in staging-reset, only on staging, behind a guard that refuses any other stack", function () {
    for (const file of files) {
      const destroys = pulumiSteps(load(file)).filter((s) => s.with?.command === "destroy");
      if (file !== "staging-reset.yml") {
        expect(destroys, file).to.have.length(0);
        expect(fs.readFileSync(path.join(WORKFLOWS, file), "utf8"), file).not.to.match(
          /pulumi\s+destroy/,
        );
      }
    }
    const wf = load("staging-reset.yml");
    const all = steps(wf);
    const destroy = all.findIndex((s) => s.with?.command === "destroy");
    expect(all[destroy].with?.["stack-name"]).to.equal("staging");
    const guard = all.findIndex((s) => s.run?.includes('if [ "$STACK" != "staging" ]'));
    expect(guard).to.be.within(0, destroy - 1);
    expect(all[guard].run).to.contain("exit 1");
    expect(wf.on).to.have.property("schedule");
    expect(wf.on).to.have.property("workflow_dispatch");
    const up = all.findIndex((s) => s.with?.command === "up");
    expect(up).to.be.greaterThan(destroy);
  });

  it("take credentials from repository secrets only", function () {
    for (const file of files) {
      const text = fs.readFileSync(path.join(WORKFLOWS, file), "utf8");
      for (const name of ["PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN", "DEPLOY_SSH_KEY"]) {
        for (const match of text.matchAll(new RegExp(`${name}:\\s*(.+)`, "g"))) {
          expect(match[1].trim(), `${file} ${name}`).to.equal(`\${{ secrets.${name} }}`);
        }
      }
    }
  });

  it("every action is pinned to a commit SHA with its version in a comment, at the current major", function () {
    // Majors checked against each action's tags (fetched snapshots) when they were pinned. An action that
    // cannot be pinned goes in UNPINNED with the reason, so the exception stays visible; none today.
    const MAJORS: Record<string, string> = {
      "actions/checkout": "v7",
      "actions/setup-node": "v7",
      "actions/upload-artifact": "v7",
      "pulumi/actions": "v7",
    };
    const UNPINNED: string[] = [];
    for (const file of files) {
      for (const line of text(file)
        .split("\n")
        .filter((l) => /^\s*(- )?uses:/.test(l))) {
        const m = /uses:\s*([\w.-]+\/[\w.-]+)@(\S+)(?:\s+#\s*(v\d+)(\.\d+){0,2})?\s*$/.exec(line);
        expect(m, `${file}: ${line}`).not.to.equal(null);
        const [, action, ref, major] = m as RegExpExecArray;
        if (UNPINNED.includes(action)) {
          continue;
        }
        expect(ref, `${file}: ${action} pinned to a commit`).to.match(/^[0-9a-f]{40}$/);
        expect(major, `${file}: ${action}'s version comment`).to.equal(MAJORS[action]);
      }
    }
  });

  it("every Pulumi CLI they install is the version package.json pins (the `pulumi` npm package)", function () {
    expect(PINNED_PULUMI).to.match(/^\d+\.\d+\.\d+$/);
    for (const file of files) {
      const installs = steps(load(file)).filter((s) => s.uses?.startsWith("pulumi/actions@"));
      for (const step of installs) {
        expect(
          String(step.with?.["pulumi-version"]),
          `${file}: ${step.name ?? step.uses}`,
        ).to.equal(PINNED_PULUMI);
      }
      // A `pulumi` command in a run step needs a CLI installed by such a step before it.
      const all = steps(load(file));
      const firstRun = all.findIndex((s) => /(^|\n)\s*pulumi\s/.test(s.run ?? ""));
      if (firstRun >= 0) {
        const install = all.findIndex((s) => s.uses?.startsWith("pulumi/actions@"));
        expect(install, `${file}: CLI installed before \`pulumi\` runs`).to.be.within(
          0,
          firstRun - 1,
        );
      }
    }
  });

  it("secrets: only at step level, production's only behind the protected `production` environment", function () {
    for (const file of files) {
      const wf = load(file);
      expect(JSON.stringify(wf.env ?? {}), `${file}: workflow env`).not.to.match(SECRET);
      for (const [name, job] of Object.entries(wf.jobs)) {
        expect(JSON.stringify(job.env ?? {}), `${file} ${name}: job env`).not.to.match(SECRET);
        if (JSON.stringify(job.steps).match(SECRET)) {
          expect(
            job.environment,
            `${file} ${name}: a job with secrets names its environment`,
          ).to.be.a("string");
        }
      }
    }
    // The environments: production appears only where the stack is production.
    expect(load("deploy.yml").jobs.deploy.environment).to.equal(
      "${{ startsWith(github.ref, 'refs/tags/v') && 'production' || 'staging' }}",
    );
    expect(load("drift.yml").jobs.drift.environment).to.equal("${{ matrix.stack }}");
    expect(load("staging-reset.yml").jobs.reset.environment).to.equal("staging");
  });

  it("pull requests never reach production: no production stack, environment or secret in them", function () {
    for (const file of files.filter(
      (f) => "pull_request" in load(f).on || "pull_request_target" in load(f).on,
    )) {
      // The parsed file (comments left out, which may explain where production is checked instead).
      expect(JSON.stringify(load(file)), file).not.to.match(/production/i);
      for (const job of Object.values(load(file).jobs)) {
        expect(job.environment, file).to.match(/^staging/);
      }
    }
    expect(files.filter((f) => "pull_request_target" in load(f).on)).to.deep.equal([]);
  });

  it("`npm ci` never runs install scripts in a workflow, and the build runs explicitly after it", function () {
    for (const file of files) {
      for (const job of Object.values(load(file).jobs)) {
        const runs = job.steps.map((s) => s.run ?? "").join("\n");
        for (const ci of runs.match(/npm ci[^&\n]*/g) ?? []) {
          expect(ci, file).to.contain("--ignore-scripts");
        }
        if (/npm ci/.test(runs) && /edms-ops|pulumi/.test(JSON.stringify(job.steps))) {
          expect(runs, `${file}: npm run build after npm ci`).to.match(
            /npm ci --ignore-scripts[^\n]*&& npm run build/,
          );
        }
      }
    }
  });

  it("every up and preview passes the policy pack, with its dependencies installed first", function () {
    for (const file of files) {
      const wf = load(file);
      const all = steps(wf);
      for (const step of pulumiSteps(wf).filter((s) =>
        ["up", "update", "preview"].includes(String(s.with?.command)),
      )) {
        const pack = file === "preview.yml" ? ".base/policy" : "policy";
        expect(step.with, `${file}: ${step.name ?? "pulumi"}`).to.include({ policyPacks: pack });
        const policyDeps = all.findIndex((s) => s.run?.includes(`npm ci --prefix ${pack}`));
        expect(policyDeps, file).to.be.within(0, all.indexOf(step) - 1);
      }
      // Any `pulumi up|preview` typed into a run step passes it too (rollback's own `up` does: pulumiCli.ts).
      for (const step of all) {
        for (const m of (step.run ?? "").matchAll(/\bpulumi\s+(up|preview)\b[^\n]*/g)) {
          expect(m[0], file).to.contain("--policy-pack policy");
        }
      }
    }
  });

  it("drift: scheduled per stack, refresh as a preview that fails on changes, health even after drift, both in the summary", function () {
    const wf = load("drift.yml");
    expect(wf.on).to.have.property("schedule");
    expect(wf.on).to.have.property("workflow_dispatch");
    const all = steps(wf);
    const refresh = all.find((s) => s.run?.includes("pulumi refresh"));
    expect(refresh?.run).to.match(
      /pulumi refresh --preview-only --expect-no-changes --diff [^\n]*\\\n\s*--stack "\$STACK"/,
    );
    expect(refresh?.run).to.contain("GITHUB_STEP_SUMMARY").and.contain('exit "$status"');
    // Never the action's `refresh` command: it writes the state, which a check must not.
    expect(pulumiSteps(wf)).to.deep.equal([]);
    const health = all.find((s) => s.run?.includes("edms-ops health"));
    expect(health?.run).to.contain('npx edms-ops health --stack "$STACK"');
    expect(health?.run).to.contain("GITHUB_STEP_SUMMARY").and.contain('exit "$status"');
    expect(health?.if).to.equal("${{ !cancelled() }}");
    expect(all.indexOf(health as Step)).to.be.greaterThan(all.indexOf(refresh as Step));
  });

  it("deploy: rollback runs the CLI the job installed, with the secrets it needs on its own step", function () {
    const rollback = steps(load("deploy.yml")).find((s) => s.run?.includes("edms-ops rollback"));
    expect(rollback?.env).to.include({
      EDMS_PULUMI: "pulumi",
      PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}",
      PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    });
  });

  it("no protection bypass (the ignore-protect flag, the unprotect state command) appears anywhere in the repository", function () {
    // Built from parts so this file does not match itself.
    const forbidden = [
      new RegExp(["--ignore", "protect"].join("-")),
      new RegExp(["state", "unprotect"].join("\\s+")),
    ];
    const offenders = repositoryFiles().filter((file) => {
      // A file another test (another mocha worker) writes and removes may go between listing and reading.
      const text = readIfThere(file);
      return forbidden.some((pattern) => pattern.test(text));
    });
    expect(offenders).to.deep.equal([]);
  });
});
