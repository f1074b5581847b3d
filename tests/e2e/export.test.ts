/**
 * The plain export (`backups export <id> --plain --to DIR`) is for operators without edms-ops or restic: it
 * is checked with `sha256sum -c`, restored with `pg_restore` into a PostgreSQL of its own and with `tar`
 * into a folder, and both must give the stack's own fingerprint. No edms-ops and no restic after the export.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import { applier, scratchPostgresArgs, tablesFingerprint, TestStack } from "../harness/stack";
import { waitForScratch } from "../../ops/backup/scratchServer";

/** A PostgreSQL of the test's own, as an operator would start one: no network, trust auth inside. */
const RESTORED_DB = "e2e-export-restored-db";

async function startRestoredDb(stack: TestStack): Promise<void> {
  await docker(["rm", "-f", "-v", RESTORED_DB], { allowFailure: true });
  // The stack's label: `stack.destroy()` removes it too if `after` never runs.
  const labels = ["--label", `edms.stack=${stack.name}`, "--label", "edms.role=test-restored-db"];
  await docker(scratchPostgresArgs(RESTORED_DB, labels));
  await waitForScratch(RESTORED_DB);
}

const restoredPsql = async (sql: string) =>
  (
    await docker(["exec", "-i", RESTORED_DB, "psql", "-U", "edms", "-d", "edms", "-XAtq"], {
      input: sql,
    })
  ).stdout.trim();

/** `sha256sum` lines (`<sum>  ./<path>`) of every file under `root`, as TestStack.fingerprint's media. */
function mediaLines(root: string, dir = "."): string[] {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      return mediaLines(root, rel);
    }
    const sum = createHash("sha256")
      .update(fs.readFileSync(path.join(root, rel)))
      .digest("hex");
    return e.isFile() ? [`${sum}  ${rel}`] : [];
  });
}

const sorted = (text: string) => text.split("\n").filter(Boolean).sort();

describe("e2e: plain export", function () {
  const stack = new TestStack("export", "staging");
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "edms-plain-export-"));

  before(async () => {
    await stack.freshDeploy();
    await stack.seed("p", 3);
  });
  after(async () => {
    await docker(["rm", "-f", "-v", RESTORED_DB], { allowFailure: true });
    fs.rmSync(out, { recursive: true, force: true });
    await stack.destroy();
  });

  it("restores with sha256sum, pg_restore and tar alone to the stack's fingerprint; no secret in it; never overwritten", async function () {
    const backup = await stack.ops(["backup", "--reason", "manual"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const id = backup.stdout.trim();
    const live = await stack.fingerprint();

    const exported = await stack.ops(["backups", "export", id, "--plain", "--to", out]);
    expect(exported.code, exported.stderr).to.equal(0);
    const folder = path.join(out, id);
    expect(fs.readdirSync(folder).sort()).to.deep.equal([
      "SHA256SUMS",
      "db.dump",
      "manifest.json",
      "media.tar",
    ]);

    // sha256sum -c SHA256SUMS
    const check = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: folder, encoding: "utf8" });
    expect(check.status, check.stdout + check.stderr).to.equal(0);
    expect(sorted(check.stdout)).to.deep.equal([
      "db.dump: OK",
      "manifest.json: OK",
      "media.tar: OK",
    ]);
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, "manifest.json"), "utf8"));
    expect(manifest).to.deep.include({ format: "edms-plain-export/1", id, version: "1.0.0" });
    expect(manifest.files["db.dump"].sha256).to.equal(manifest.database.sha256);

    // docker cp db.dump, then pg_restore into an empty database of a server of its own
    await startRestoredDb(stack);
    await docker(["cp", path.join(folder, "db.dump"), `${RESTORED_DB}:/tmp/db.dump`]);
    await docker([
      "exec",
      RESTORED_DB,
      ...["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"],
      ...["-U", "edms", "-d", "edms", "/tmp/db.dump"],
    ]);
    const { media: liveMedia, ...liveTables } = live;
    expect(await tablesFingerprint(restoredPsql)).to.deep.equal(liveTables);
    expect(liveTables.documents_document).to.match(/^3:/);

    // tar -tf: every path relative to the media root; tar -xf into an empty folder
    const listed = spawnSync("tar", ["-tf", path.join(folder, "media.tar")], { encoding: "utf8" });
    expect(listed.status, listed.stderr).to.equal(0);
    expect(sorted(listed.stdout).filter((p) => !p.startsWith("./"))).to.deep.equal([]);
    const mediaRoot = fs.mkdtempSync(path.join(os.tmpdir(), "edms-plain-media-"));
    try {
      const untar = spawnSync("tar", ["-xf", path.join(folder, "media.tar"), "-C", mediaRoot]);
      expect(untar.status, String(untar.stderr)).to.equal(0);
      expect(mediaLines(mediaRoot).sort()).to.deep.equal(sorted(liveMedia));
      expect(sorted(liveMedia)).to.have.length.at.least(3);
    } finally {
      fs.rmSync(mediaRoot, { recursive: true, force: true });
    }

    // The database password, Django key, superuser and repository passwords: in none of the files.
    const secrets = applier.secrets(stack.name);
    expect(secrets.length).to.be.at.least(4);
    for (const file of fs.readdirSync(folder)) {
      const bytes = fs.readFileSync(path.join(folder, file));
      for (const secret of secrets) {
        expect(bytes.includes(secret), `a secret in ${file}: ${secret.slice(0, 4)}…`).to.equal(
          false,
        );
      }
    }

    // A second export into the same DIR: refused, nothing overwritten.
    const again = await stack.ops(["backups", "export", id, "--plain", "--to", out]);
    expect(again.code, again.stderr).to.equal(2);
    expect(again.stderr).to.contain("already exists and is not an empty folder");
    expect(spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: folder }).status).to.equal(0);
  });
});
