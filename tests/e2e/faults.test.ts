/** Backups under faults: killed mid-way, a corrupted byte, a full disk; and retention. */
import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { docker } from "../../ops/lib/docker";
import { opsKilledAfter, TestStack } from "./support";

describe("e2e: backup faults", function () {
  const stack = new TestStack("flt", "staging", {
    "edms:version": "2.0.0",
    "edms:backup": { beforeDeploy: false, keep: 2 },
  });
  before(async () => {
    await stack.destroy();
    expect((await stack.up()).error).to.equal(undefined);
    await stack.seed("f", 20, 64 * 1024);
  });
  after(() => stack.destroy());

  it("6a. a backup killed (SIGKILL) at several points is never listed as complete; the next one is fine", async function () {
    const good = await stack.ops(["backup"]);
    expect(good.code, good.stderr).to.equal(0);
    let kills = 0;
    for (const ms of [1500, 3000, 4500]) {
      const { signal } = await opsKilledAfter(
        ["backup", "--stack", stack.name, "--reason", "killed"],
        ms,
      );
      if (signal !== "SIGKILL") {
        continue;
      } // finished before the kill: nothing to check at this point
      kills += 1;
      const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout);
      expect(listed.corrupt, `killed at ${ms}ms`).to.deep.equal([]);
      for (const m of listed.complete) {
        expect(m.files["db.dump"].sha256).to.match(/^[0-9a-f]{64}$/);
      }
    }
    expect(kills, "backups actually killed mid-way").to.be.at.least(2);
    await new Promise((r) => setTimeout(r, 3000)); // let orphaned docker children of the killed CLI finish
    const next = await stack.ops(["backup", "--reason", "after-kill"]);
    expect(next.code, next.stderr).to.equal(0);
    const verify = await stack.ops(["verify", next.stdout.trim()]);
    expect(verify.code, verify.stderr).to.equal(0);
    expect(
      await stack.onVolume(stack.backupsVolume, "ls -a /v | grep -c '^\\.partial' || true"),
    ).to.equal("0");
  });

  it("6b. retention keeps exactly `keep` complete backups", async function () {
    for (let i = 0; i < 3; i += 1) {
      expect((await stack.ops(["backup", "--reason", `r${i}`])).code).to.equal(0);
    }
    const ids = await stack.backupIds();
    expect(ids).to.have.length(2);
    expect(ids[0]).to.match(/-r1$/);
    expect(ids[1]).to.match(/-r2$/);
  });

  it("6c. a corrupted byte in a dump: verify and restore refuse it, data untouched", async function () {
    const [, id] = await stack.backupIds();
    await stack.onVolume(
      stack.backupsVolume,
      `printf 'X' | dd of=/v/${id}/db.dump bs=1 seek=2000 conv=notrunc 2>/dev/null`,
    );
    const verify = await stack.ops(["verify", id]);
    expect(verify.code).to.equal(1);
    expect(verify.stderr).to.match(/FAILED verification:\n {2}- db\.dump: sha256 mismatch/);
    const before = await stack.fingerprint();
    const restore = await stack.ops(["restore", id]);
    expect(restore.code).to.equal(1);
    expect(restore.stderr).to.match(/failed verification; nothing was restored or changed/);
    expect(await stack.fingerprint()).to.deep.equal(before);
  });

  it("6d. a corrupted manifest: listed as damaged, refused by verify", async function () {
    const [id] = await stack.backupIds();
    await stack.onVolume(
      stack.backupsVolume,
      `echo '{"format": 1, "id": "x"' > /v/${id}/manifest.json`,
    );
    const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout);
    expect(listed.corrupt.map((c: { id: string }) => c.id)).to.deep.equal([id]);
    const verify = await stack.ops(["verify", id]);
    expect(verify.code).to.equal(1);
    expect(verify.stderr).to.contain(`Backup ${id} is not usable: manifest.json is not valid JSON`);
  });
});

describe("e2e: backup on a full disk", function () {
  const stack = new TestStack("full", "dev", { "edms:version": "2.0.0" });
  // A 1 MiB filesystem behind the backups volume: a host tmpfs bind-mounted by the local driver (a
  // `type=tmpfs` volume would give every container its own empty tmpfs).
  const disk = fs.mkdtempSync(path.join(os.tmpdir(), "edms-small-disk-"));
  before(async () => {
    await stack.destroy();
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", disk]);
    await docker([
      "volume",
      "create",
      "--opt",
      "type=none",
      "--opt",
      "o=bind",
      "--opt",
      `device=${disk}`,
      "--label",
      `edms.stack=${stack.name}`,
      stack.backupsVolume,
    ]);
    expect((await stack.up()).error).to.equal(undefined);
    await stack.seed("small", 1, 1024);
  });
  after(async () => {
    await stack.destroy();
    execFileSync("umount", [disk]);
    fs.rmSync(disk, { recursive: true, force: true });
  });

  it("6e. clear error, the partial backup removed, earlier backups intact", async function () {
    const first = await stack.ops(["backup", "--reason", "fits"]);
    expect(first.code, first.stderr).to.equal(0);
    await stack.seed("big", 3, 1024 * 1024);
    const full = await stack.ops(["backup", "--reason", "too-big"]);
    expect(full.code, full.stderr).to.equal(1);
    expect(full.stderr).to.match(
      /failed: no space left in the backups volume\. It was removed; the 1 earlier backup\(s\) are untouched\./,
    );
    expect(full.stderr).to.contain(
      `Free space on the volume ${stack.backupsVolume} or lower \`edms:backup.keep\``,
    );
    expect(await stack.backupIds()).to.deep.equal([first.stdout.trim()]);
    expect(
      await stack.onVolume(stack.backupsVolume, "ls -a /v | grep -c '^\\.partial' || true"),
    ).to.equal("0");
    const verify = await stack.ops(["verify", first.stdout.trim()]);
    expect(verify.code, verify.stderr).to.equal(0);
  });
});
