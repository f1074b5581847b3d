/** Production: reset always refused with data untouched; disaster recovery from an exported backup. */
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { docker } from "../../ops/lib/docker";
import { TestStack } from "./support";

describe("e2e: production refusals and disaster recovery", function () {
  const stack = new TestStack("dr", "production", { "edms:version": "2.0.0" });
  const offsite = fs.mkdtempSync(path.join(os.tmpdir(), "edms-offsite-"));
  let fingerprint: Record<string, string>;
  let exported: string;

  before(async () => {
    await stack.destroy();
    const { error } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    await stack.seed("d");
    fingerprint = await stack.fingerprint();
  });
  after(async () => {
    await stack.destroy();
    fs.rmSync(offsite, { recursive: true, force: true });
  });

  it("2. reset on production is refused whatever the flags; volumes and data untouched", async function () {
    const volumes = await stack.volumes();
    for (const args of [
      ["reset", "--confirm", "production"],
      ["reset", "--confirm", "dr"],
      ["reset"],
      ["reset", "--confirm", "dr", "--no-backup"],
    ]) {
      const result = await stack.ops(args);
      expect(result.code, args.join(" ")).to.equal(2);
      expect(result.stderr).to.match(
        /reset is refused on production \(stack `dr`\): production data is never reinitialised, whatever flags are given\. Nothing was changed\./,
      );
      expect(result.stderr).to.match(/restore a backup/);
    }
    expect(await stack.volumes()).to.deep.equal(volumes);
    expect(await stack.fingerprint()).to.deep.equal(fingerprint);
  });

  it("2b. a staging-labelled stack file pointed at production volumes is refused by the volumes' labels", async function () {
    const impostor = new TestStack("impostor", "staging", { "edms:namePrefix": stack.prefix });
    const result = await impostor.ops(["reset", "--confirm", "impostor"]);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/refused on production/);
    expect(await stack.fingerprint()).to.deep.equal(fingerprint);
  });

  it("restore on production needs --confirm production", async function () {
    const backup = await stack.ops(["backup", "--reason", "offsite"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const id = backup.stdout.trim();
    const result = await stack.ops(["restore", id]);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.contain(
      "restore on production replaces live data and needs `--confirm production`",
    );
    const wrong = await stack.ops(["restore", id, "--confirm", "dr"]);
    expect(wrong.code).to.equal(2);
    expect(wrong.stderr).to.contain("(got `dr`)");
  });

  it("4. disaster recovery: everything lost, fresh deploy, import the exported backup, restore, integrity and login", async function () {
    const [id] = (await stack.backupIds()).filter((b) => b.endsWith("-offsite"));
    const exportResult = await stack.ops(["backups", "export", id, "--to", offsite]);
    expect(exportResult.code, exportResult.stderr).to.equal(0);
    exported = path.join(offsite, id);
    expect(fs.readdirSync(exported).sort()).to.deep.equal([
      "db.dump",
      "manifest.json",
      "media.tar",
    ]);

    // The disaster: every container and volume of the stack gone, backups included.
    const ids = (await docker(["ps", "-aq", "--filter", `label=edms.stack=${stack.name}`])).stdout
      .split("\n")
      .filter(Boolean);
    await docker(["rm", "-f", ...ids]);
    await docker(["volume", "rm", ...(await stack.volumes())]);

    const { error, hooks } = await stack.up(); // pulumi up --refresh: the same stack state and secrets
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.include.members(["migrate", "bootstrap"]);
    expect(await stack.psql("SELECT count(*) FROM documents_document;")).to.equal("0");

    const imported = await stack.ops(["backups", "import", exported]);
    expect(imported.code, imported.stderr).to.equal(0);
    const again = await stack.ops(["backups", "import", exported]);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.contain("is already in");

    const restored = await stack.ops(["restore", id, "--confirm", "production"]);
    expect(restored.code, restored.stderr).to.equal(0);
    expect(restored.stdout).to.contain("row counts and media checksums equal the manifest");
    expect(restored.stdout).to.match(
      /To undo, run: edms-ops restore \S+-pre-restore --stack dr --confirm production/,
    );
    expect(await stack.fingerprint()).to.deep.equal(fingerprint);
    const health = await stack.ops(["health", "--wait", "60"]);
    expect(health.code, health.stdout).to.equal(0);
    const login = await stack.django(
      'from django.test import Client\nc = Client()\nprint(c.login(username="clerk-d", password="clerk-pass-d"), c.login(username="clerk-d", password="wrong"))',
    );
    expect(login).to.equal("True False");
  });

  it("a tampered export is refused on import", async function () {
    const manifest = JSON.parse(fs.readFileSync(path.join(exported, "manifest.json"), "utf8"));
    const copy = path.join(offsite, "tampered", manifest.id);
    fs.mkdirSync(copy, { recursive: true });
    for (const f of ["db.dump", "media.tar", "manifest.json"]) {
      fs.copyFileSync(path.join(exported, f), path.join(copy, f));
    }
    const dump = fs.readFileSync(path.join(copy, "db.dump"));
    dump[Math.floor(dump.length / 2)] ^= 0xff;
    fs.writeFileSync(path.join(copy, "db.dump"), dump);
    const result = await stack.ops(["backups", "import", copy]);
    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(
      /is corrupt: db\.dump: sha256 does not match the manifest\. Nothing was imported\./,
    );
    fs.writeFileSync(path.join(copy, "manifest.json"), "{ not json");
    const broken = await stack.ops(["backups", "import", copy]);
    expect(broken.stderr).to.contain("manifest.json is not valid JSON");
  });
});
