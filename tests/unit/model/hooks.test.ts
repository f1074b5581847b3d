import { expect } from "chai";
import { Command } from "commander";
import {
  backupIdFromHookOutput,
  HOOK_CONTRACTS,
  HookName,
  HOOKS,
  REASONS,
} from "../../../model/hooks";
import { buildProgram } from "../../../ops/cli";

const ID = "2026-11-25T14-00-00Z-pre-deploy";

describe("hook contract (model/hooks.ts)", function () {
  it("has one contract per hook, under the hook's resource name", function () {
    expect(Object.keys(HOOK_CONTRACTS)).to.have.members(Object.values(HOOKS));
    for (const [key, contract] of Object.entries(HOOK_CONTRACTS)) {
      expect(contract.name, key).to.equal(key);
    }
  });

  it("builds each hook's edms-ops argv from its typed input", function () {
    const argv: Record<HookName, string[]> = {
      freshStartBackup: HOOK_CONTRACTS.freshStartBackup.argv({}),
      backupInit: HOOK_CONTRACTS.backupInit.argv({}),
      preDeployBackup: HOOK_CONTRACTS.preDeployBackup.argv({ version: "2.0.0" }),
      preDeployDrill: HOOK_CONTRACTS.preDeployDrill.argv({ backupId: ID }),
      migrate: HOOK_CONTRACTS.migrate.argv({}),
      bootstrap: HOOK_CONTRACTS.bootstrap.argv({}),
      proxyTakeover: HOOK_CONTRACTS.proxyTakeover.argv({ wait: 120 }),
      proxySwitch: HOOK_CONTRACTS.proxySwitch.argv({ wait: 30 }),
      healthGate: HOOK_CONTRACTS.healthGate.argv({ wait: 120 }),
      recordDeployment: HOOK_CONTRACTS.recordDeployment.argv({ backupId: ID }),
    };
    expect(argv).to.deep.equal({
      freshStartBackup: ["backup", "--reason", "pre-fresh-start", "--earlier-generation"],
      backupInit: ["backups", "init"],
      preDeployBackup: [
        "backup",
        "--reason",
        "pre-deploy",
        "--target-version",
        "2.0.0",
        "--print-id",
      ],
      preDeployDrill: ["drill", "--backup-id", ID, "--reason", "pre-deploy"],
      migrate: ["migrate"],
      bootstrap: ["bootstrap"],
      proxyTakeover: ["switch", "--take-over-port", "--wait", "120"],
      proxySwitch: ["switch", "--wait", "30"],
      healthGate: ["health", "--wait", "120"],
      recordDeployment: ["record-deployment", "--backup-id", ID],
    });
  });

  it("hands an empty id on as an empty argument, and no id (no backup hook) as no flag", function () {
    expect(HOOK_CONTRACTS.preDeployDrill.argv({ backupId: "" })).to.deep.equal([
      "drill",
      "--backup-id",
      "",
      "--reason",
      REASONS.preDeploy,
    ]);
    expect(HOOK_CONTRACTS.recordDeployment.argv({ backupId: "" })).to.deep.equal([
      "record-deployment",
      "--backup-id",
      "",
    ]);
    expect(HOOK_CONTRACTS.recordDeployment.argv({})).to.deep.equal(["record-deployment"]);
  });

  // The table is worth something only if edms-ops really has these commands and flags.
  it("names only edms-ops commands and flags that exist, and lists every flag its argv uses", function () {
    const inputs = { version: "2.0.0", backupId: ID };
    for (const contract of Object.values(HOOK_CONTRACTS)) {
      const command = contract.command.reduce<Command | undefined>(
        (node, word) => node?.commands.find((c) => c.name() === word),
        buildProgram(),
      );
      expect(command, contract.name).not.to.equal(undefined);
      const options = command!.options.map((o) => o.long);
      expect(options, contract.name).to.include.members([...contract.flags]);
      const argv = (contract.argv as (input: typeof inputs) => string[])(inputs);
      expect(argv.slice(0, contract.command.length), contract.name).to.deep.equal(contract.command);
      const used = argv.filter((word) => word.startsWith("--"));
      expect(contract.flags, contract.name).to.include.members(used);
    }
  });

  describe("the backup id in the backup hook's stdout", function () {
    it("is its last line, as the command provider keeps it (trailing newline trimmed or not)", function () {
      expect(backupIdFromHookOutput(ID)).to.equal(ID);
      expect(backupIdFromHookOutput(`${ID}\n`)).to.equal(ID);
      expect(backupIdFromHookOutput(`some line a command printed first\n${ID}`)).to.equal(ID);
    });

    it("is empty when the backup found nothing to back up (an empty last line)", function () {
      expect(backupIdFromHookOutput("")).to.equal("");
      expect(backupIdFromHookOutput("\n")).to.equal("");
      expect(backupIdFromHookOutput(`${ID}\n\n`)).to.equal("");
    });
  });
});
