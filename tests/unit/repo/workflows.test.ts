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
type Workflow = {
  on: Record<string, any>;
  env?: Record<string, string>;
  jobs: Record<string, { env?: Record<string, string>; steps: Step[] }>;
};

const load = (file: string) =>
  YAML.parse(fs.readFileSync(path.join(WORKFLOWS, file), "utf8")) as Workflow;
const steps = (wf: Workflow) => Object.values(wf.jobs).flatMap((j) => j.steps);
const pulumiSteps = (wf: Workflow) =>
  steps(wf).filter((s) => s.uses?.startsWith("pulumi/actions@"));

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

  it("are the three the design names, and parse", function () {
    expect(files).to.deep.equal(["deploy.yml", "preview.yml", "staging-reset.yml"]);
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
      .that.deep.equals(["staging", "production"]);
    const deployStack = load("deploy.yml").jobs.deploy.env?.STACK;
    expect(deployStack).to.equal(
      "${{ startsWith(github.ref, 'refs/tags/v') && 'production' || 'staging' }}",
    );
  });

  it("preview: on pull requests, both stacks, with the policy pack, commented on the PR", function () {
    const wf = load("preview.yml");
    expect(wf.on).to.have.property("pull_request");
    const [preview] = pulumiSteps(wf);
    expect(preview.with).to.include({
      command: "preview",
      policyPacks: "policy",
      "comment-on-pr": true,
    });
  });

  it("deploy: main → staging, release tags → production, rollback with a backup first on failure", function () {
    const wf = load("deploy.yml");
    expect(wf.on.push).to.deep.equal({ branches: ["main"], tags: ["v*"] });
    const [up] = pulumiSteps(wf);
    expect(up.with).to.include({ command: "up", policyPacks: "policy" });
    const rollback = steps(wf).find((s) => s.run?.includes("edms-ops rollback"));
    expect(rollback?.if).to.equal("failure()");
    expect(rollback?.run).to.contain("--previous --backup-first");
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

  it("no protection bypass (the ignore-protect flag, the unprotect state command) appears anywhere in the repository", function () {
    // Built from parts so this file does not match itself.
    const forbidden = [
      new RegExp(["--ignore", "protect"].join("-")),
      new RegExp(["state", "unprotect"].join("\\s+")),
    ];
    const offenders = repositoryFiles().filter((file) => {
      const text = fs.readFileSync(file, "latin1");
      return forbidden.some((pattern) => pattern.test(text));
    });
    expect(offenders).to.deep.equal([]);
  });
});
