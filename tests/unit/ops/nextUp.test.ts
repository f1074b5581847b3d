/**
 * What edms-ops tells the operator to run after it leaves web/worker stopped, given what the next `pulumi up`
 * does with a stopped container (@pulumi/docker 5.x starts it in place, and behind the proxy runs no deploy
 * hook): the release to deploy is named, and an incomplete restore keeps `pulumi up` off the stack.
 */
import { expect } from "chai";
import { incompleteRestore } from "../../../ops/backup/restore";
import { redeployFailed, releaseConfig } from "../../../ops/engine/pulumi";
import { EXIT } from "../../../ops/core/errors";
import { notRedeployed } from "../../../ops/commands/rollbackSteps";
import { Settings } from "../../../model/settings";

const rb = { stack: "rb", environment: "staging" as const };

describe("after edms-ops leaves web/worker stopped", function () {
  it("a rollback whose redeploy failed after the data steps names the release to deploy, not a bare `pulumi up`", function () {
    for (const command of [
      "pulumi config set edms:version 1.0.0 --stack rb",
      "pulumi up --stack rb --yes",
    ]) {
      const error = redeployFailed(rb, "1.0.0", command, 1, false);
      expect(error.exitCode).to.equal(EXIT.failed);
      expect(error.message).to.contain("web/worker are stopped");
      expect(error.fix).to.equal(
        "fix the cause, then run `pulumi config set edms:version 1.0.0 --stack rb` and `pulumi up --stack rb`.",
      );
    }
    // Behind the proxy, before any data step: the rollback itself is the next step.
    expect(redeployFailed(rb, "1.0.0", "pulumi up --stack rb --yes", 255, true).fix).to.equal(
      "Fix the cause, then run `edms-ops rollback --previous --stack rb` again.",
    );
    // On production the command to run again carries the flag production asks for.
    const production = { stack: "production", environment: "production" as const };
    expect(redeployFailed(production, "1.0.0", "pulumi up", 255, true).fix).to.equal(
      "Fix the cause, then run `edms-ops rollback --previous --stack production --confirm production` again.",
    );
    expect(notRedeployed(production as Settings, "1.0.0", true).fix).to.contain(
      "`edms-ops rollback --previous --stack production --confirm production` again",
    );
  });

  it("rollback configures the target's recorded digest with its version, or removes the newer release's", function () {
    const newer = `sha256:${"2".repeat(64)}`;
    const older = `sha256:${"1".repeat(64)}`;
    const stack = { stack: "rb", releaseDigest: newer };
    expect(releaseConfig(stack, { version: "1.0.0", digest: older })).to.deep.equal([
      ["config", "set", "edms:version", "1.0.0", "--stack", "rb"],
      ["config", "set", "edms:releaseDigest", older, "--stack", "rb"],
    ]);
    expect(releaseConfig(stack, { version: "1.0.0" })).to.deep.equal([
      ["config", "set", "edms:version", "1.0.0", "--stack", "rb"],
      ["config", "rm", "edms:releaseDigest", "--stack", "rb"],
    ]);
    // A stack that pins nothing is configured as before.
    expect(releaseConfig({ stack: "rb" }, { version: "1.0.0" })).to.deep.equal([
      ["config", "set", "edms:version", "1.0.0", "--stack", "rb"],
    ]);
    const config = releaseConfig(stack, { version: "1.0.0", digest: older });
    expect(
      redeployFailed(rb, "1.0.0", "pulumi up --stack rb --yes", 1, false, config).fix,
    ).to.equal(
      `fix the cause, then run \`pulumi config set edms:version 1.0.0 --stack rb\`, \`pulumi config set edms:releaseDigest ${older} --stack rb\` and \`pulumi up --stack rb\`.`,
    );
  });

  it("an incomplete restore says to finish it before any `pulumi up`, which would start web/worker on half-restored data", function () {
    const error = incompleteRestore("staging", "2026-01-02T03-04-05-manual", "u-1", "disk full");
    expect(error.exitCode).to.equal(EXIT.incomplete);
    expect(error.message).to.match(/INCOMPLETE: .*Web\/worker stay stopped\.\nCause: disk full$/s);
    expect(error.fix).to.match(
      /^Run the same restore again to finish it, before any `pulumi up` \(/,
    );
    expect(error.fix).to.contain("start web/worker again on the half-restored data");
    expect(error.fix).to.contain("run `edms-ops restore u-1 --stack staging`");
    expect(incompleteRestore("staging", "x", null, "c").fix).not.to.contain("go back");
  });
});
