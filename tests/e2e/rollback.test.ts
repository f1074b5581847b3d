/** Rollback 2.0.0 → 1.0.0: migration-aware (keeps data written since), and --restore (back to the pre-deploy state). */
import { expect } from "chai";
import { LoadStream } from "../harness/load";
import { TestStack } from "../harness/stack";

describe("e2e: rollback", function () {
  const stack = new TestStack("rb", "staging", { "edms:backup": { beforeDeploy: true, keep: 10 } });
  before(async () => {
    await stack.freshDeploy("1.0.0");
  });
  after(() => stack.destroy());

  it("refuses when the history holds no earlier release, and changes nothing", async function () {
    // Deployed once: the stack is healthy and its history has 1.0.0 only, so this reaches the history check
    // (not the "PostgreSQL container missing" refusal an undeployed stack gets).
    const before = await stack.fingerprint();
    const statusBefore = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    const result = await stack.ops(["rollback", "--previous", "--backup-first"]);
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stderr).to.match(
      /No earlier release than 1\.0\.0 in the deployment history of rb \(1 deployment\(s\) on these volumes\); nothing to roll back to\./,
    );
    expect(result.stdout).not.to.contain("Will roll");
    expect(await stack.fingerprint()).to.deep.equal(before);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.runningVersion).to.equal("1.0.0");
    // --backup-first took no backup: the refusal comes before anything is done.
    expect(status.backups.count).to.equal(statusBefore.backups.count);
  });

  it("deploys 2.0.0 over seeded 1.0.0 data; a deploy job's rollback after a failure that was not 2.0.0's changes nothing", async function () {
    await stack.seed("v1");
    expect((await stack.up("2.0.0")).error).to.equal(undefined);
    // 2.0.0 is the newest recorded deployment: a later `up` of the same release that failed (config, the
    // host) is no reason to go back to 1.0.0 and reverse its migrations.
    const before = await stack.fingerprint();
    const refused = await stack.ops(["rollback", "--previous", "--after-failed-deploy"]);
    expect(refused.code, refused.stderr).to.equal(2);
    expect(refused.stderr).to.contain(
      "The deploy that failed did not change the release: 2.0.0 is already the newest recorded deployment of rb",
    );
    expect(await stack.fingerprint()).to.deep.equal(before);
  });

  it("3a. rollback --previous: migrations reversed with the current image, data written after the deploy kept, 1.0.0 healthy", async function () {
    await stack.seed("after-v2");
    // A row the application's database role can write: its app would reach `migrate` as an option (`-h`
    // prints help and exits 0, which passed for a done reversal). Refused before anything is done.
    await stack.psql(
      "INSERT INTO django_migrations (app, name, applied) VALUES ('-h', 'x', now());",
    );
    const planted = await stack.fingerprint();
    const backupsBefore = JSON.parse((await stack.ops(["status", "--json"])).stdout).backups.count;
    const refused = await stack.ops(["rollback", "--previous", "--backup-first"]);
    expect(refused.code, refused.stderr).to.equal(2);
    expect(refused.stderr).to.contain('django_migrations names "-h" (app "-h")');
    expect(await stack.fingerprint()).to.deep.equal(planted);
    const statusRefused = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(statusRefused.unfinishedRollback).to.equal(null);
    expect(statusRefused.backups.count, "no backup taken").to.equal(backupsBefore);
    await stack.psql("DELETE FROM django_migrations WHERE app = '-h';");
    const before = await stack.fingerprint();
    expect(before.documents_document).to.match(/^6:/);
    const result = await stack.ops(["rollback", "--previous", "--backup-first"]);
    // No Pulumi CLI here: the data steps are done, the redeploy is left to run (exit 3, incomplete).
    expect(result.code, result.stderr).to.equal(3);
    expect(result.stdout).to.match(/Will roll rb back from 2\.0\.0 to 1\.0\.0/);
    expect(result.stdout).to.contain("migrate documents 0001_initial");
    expect(result.stdout).to.contain("pulumi config set edms:version 1.0.0 --stack rb");
    expect(result.stdout).to.contain("pulumi up --stack rb --yes");
    expect(result.stdout).to.match(/The state before the rollback is backup \S+-pre-rollback\./);
    expect(await stack.documentsSchema()).to.deep.equal({ migration: "0001_initial", slug: false });

    // Cut short after the first printed command (`pulumi config set edms:version 1.0.0`): the configured
    // release is the target now, so a plan made afresh would roll "back" to 2.0.0. The run again finishes
    // the kept plan: nothing to reverse, only the redeploy of 1.0.0 left.
    const pending = JSON.parse((await stack.ops(["status", "--json"])).stdout).unfinishedRollback;
    expect(pending).to.include({ from: "2.0.0", to: "1.0.0", withoutProxy: true });
    // Configured for a third release (its deploy failed before its record): not finished towards 1.0.0.
    stack.set("edms:version", "2.0.1");
    const third = await stack.ops(["rollback", "--previous", "--after-failed-deploy"]);
    expect(third.code, third.stderr).to.equal(2);
    expect(third.stderr).to.contain(
      "A rollback 2.0.0 → 1.0.0 is unfinished, but the configured release is 2.0.1",
    );
    stack.set("edms:version", "1.0.0");
    const again = await stack.ops(["rollback", "--previous", "--backup-first"]);
    expect(again.code, again.stderr).to.equal(3);
    expect(again.stdout).to.contain("Finishing the rollback 2.0.0 → 1.0.0");
    expect(again.stdout).to.contain("2.0.0's migrations are reversed already");
    expect(again.stdout).to.contain("pulumi config set edms:version 1.0.0 --stack rb");
    expect(again.stdout).not.to.contain("Will roll");
    expect(again.stdout).not.to.match(/pre-rollback/);
    expect(await stack.documentsSchema()).to.deep.equal({ migration: "0001_initial", slug: false });

    const { error } = await stack.up("1.0.0"); // the two printed commands
    expect(error, error?.message).to.equal(undefined);
    expect(await stack.fingerprint()).to.deep.equal(before);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.runningVersion).to.equal("1.0.0");
    expect(status.unfinishedRollback, "the deploy of the target completes the rollback").to.equal(
      null,
    );
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("3b. rollback --previous --restore: the state equals the pre-deploy backup of the failed release", async function () {
    const atV1 = await stack.fingerprint();
    expect((await stack.up("2.0.0")).error).to.equal(undefined);
    await stack.seed("lost");
    expect((await stack.fingerprint()).documents_document).not.to.equal(atV1.documents_document);
    const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete;
    const preDeploy = listed.filter(
      (b: { reason: string; target: string }) => b.reason === "pre-deploy" && b.target === "2.0.0",
    );
    const result = await stack.ops(["rollback", "--previous", "--restore"]);
    expect(result.code, `incomplete (3) until redeployed: ${result.stderr}`).to.equal(3);
    expect(result.stdout).to.contain("restore the pre-deploy backup of 2.0.0");
    // Chosen under the restore's lock: the newest of them.
    expect(result.stdout).to.contain(`the pre-deploy backup of 2.0.0 is ${preDeploy.pop().id}`);
    const { error } = await stack.up("1.0.0");
    expect(error, error?.message).to.equal(undefined);
    expect(await stack.fingerprint()).to.deep.equal(atV1);
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("turning the proxy on for this stack (deployed without it): `pulumi up` succeeds, the old web gives the port up only once the new one is healthy", async function () {
    stack.set("edms:proxy", { image: "edms-test/proxy:haproxy" });
    const stream = new LoadStream(stack.port).start();
    const { error, hooks } = await stack.up("1.0.0");
    const report = await stream.stop();
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.include.members(["proxyTakeover", "proxySwitch"]);
    const names = await stack.containers({ all: true });
    expect(names).to.include(`${stack.prefix}-proxy`);
    expect(names).to.include(`${stack.prefix}-web-1.0.0`);
    expect(names).not.to.include(`${stack.prefix}-web`);
    const health = await stack.ops(["health"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
    expect(health.stdout).to.contain("http /health/ (through the proxy)");
    console.log(
      `      (proxy turned on: ${report.requests} requests, ${report.errors.length + report.failed.length} without a 200 during the takeover)`,
    );
    stack.set("edms:proxy", { enabled: false });
  });
});
