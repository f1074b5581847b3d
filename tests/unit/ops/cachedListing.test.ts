import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cachedListing } from "../../../ops/store/catalog";
import { testShells } from "../../harness/shells";

/** The tools the listing script calls, busybox's own in its shell. */
const shells = (root: string) =>
  testShells(root, ["stat", "sha256sum", "cut", "cat", "mktemp", "mv", "rm", "printf"]);

/**
 * A backups volume in a folder, and the listing script run over it with `lrestic` faked: it counts its
 * starts, prints the snapshot files' names as the listing, and runs $DURING (a change while restic lists).
 */
class Volume {
  readonly repo: string;
  readonly password: string;
  readonly record: string;
  readonly starts: string;
  constructor(readonly root: string) {
    this.repo = path.join(root, "restic");
    this.password = path.join(root, ".keys", "restic-password");
    this.record = path.join(root, ".snapshots-listed");
    this.starts = path.join(root, "starts");
    for (const dir of ["snapshots", "keys"]) {
      fs.mkdirSync(path.join(this.repo, dir), { recursive: true });
    }
    fs.mkdirSync(path.dirname(this.password));
    fs.writeFileSync(path.join(this.repo, "config"), "config");
    fs.writeFileSync(path.join(this.repo, "keys", "k1"), "key");
    fs.writeFileSync(this.password, "secret-one");
    fs.writeFileSync(this.starts, "");
  }

  snapshot(name: string): void {
    fs.writeFileSync(path.join(this.repo, "snapshots", name), name);
  }

  list(env: NodeJS.ProcessEnv, extra: Record<string, string> = {}) {
    const fake = `lrestic() { echo x >> "${this.starts}"; eval "\${DURING:-}"; [ -z "\${FAIL:-}" ] || { echo "wrong password" >&2; return 1; }; printf '['; ls "${this.repo}/snapshots" | tr '\\n' ','; printf ']\\n'; }`;
    const script = `${fake}\n${extra.PRELUDE ?? ""}\n${cachedListing({
      repository: this.repo,
      passwordFile: this.password,
      record: this.record,
      partial: path.join(this.root, ".partial-snapshots-listed.XXXXXX"),
    })}`;
    const run = spawnSync("sh", ["-euc", script], { env: { ...env, ...extra } });
    return {
      code: run.status,
      stdout: run.stdout.toString("utf8"),
      stderr: run.stderr.toString("utf8"),
      restic: fs.readFileSync(this.starts, "utf8").split("\n").filter(Boolean).length,
    };
  }
}

describe("the snapshot listing kept in the backups volume (no restic when nothing changed)", () => {
  let root: string;
  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "cached-listing-"))));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("answers a second listing without restic, and asks restic again after any change it depends on", () => {
    for (const { name, env } of shells(path.join(root, "tools"))) {
      const volume = new Volume(path.join(root, name));
      volume.snapshot("aaa");
      const first = volume.list(env);
      expect(first, name).to.deep.include({ code: 0, stdout: "[aaa,]\n", restic: 1 });
      expect(volume.list(env), name).to.deep.include({ code: 0, stdout: "[aaa,]\n", restic: 1 });
      expect(fs.statSync(volume.record).mode & 0o777, name).to.equal(0o600);
      // A new snapshot (a backup), a forgotten one, a re-tag (a new name for the same one).
      volume.snapshot("bbb");
      expect(volume.list(env).stdout, name).to.equal("[aaa,bbb,]\n");
      fs.rmSync(path.join(volume.repo, "snapshots", "aaa"));
      expect(volume.list(env), name).to.deep.include({ stdout: "[bbb,]\n", restic: 3 });
      expect(volume.list(env).restic, name).to.equal(3);
      // Another password of the same length: restic decides, never the kept listing.
      fs.writeFileSync(volume.password, "secret-two");
      const refused = volume.list(env, { FAIL: "1" });
      expect(refused.code, name).to.equal(1);
      expect(refused.stderr, name).to.contain("wrong password");
      expect(refused.restic, name).to.equal(4);
      // A new key file (restic key add) or config: asked again.
      expect(volume.list(env).restic, name).to.equal(5);
      fs.writeFileSync(path.join(volume.repo, "keys", "k2"), "key");
      expect(volume.list(env).restic, name).to.equal(6);
      expect(volume.list(env).restic, name).to.equal(6);
    }
  });

  it("keeps no listing that changed while restic listed, nor a partial one; an unwritable record is no failure", () => {
    for (const { name, env } of shells(path.join(root, "tools2"))) {
      const volume = new Volume(path.join(root, `${name}-2`));
      volume.snapshot("aaa");
      // A backup lands while restic lists: what it printed may predate it, so it is not kept.
      const during = `printf x > "${path.join(volume.repo, "snapshots", "ccc")}"`;
      expect(volume.list(env, { DURING: during }).code, name).to.equal(0);
      expect(fs.existsSync(volume.record), name).to.equal(false);
      expect(volume.list(env), name).to.deep.include({ stdout: "[aaa,ccc,]\n", restic: 2 });
      expect(volume.list(env).restic, name).to.equal(2);
      // A snapshot written and removed again while restic lists (a failed backup's): the end states look
      // alike, the folder's times do not.
      const ghost = path.join(volume.repo, "snapshots", "ggg");
      fs.writeFileSync(path.join(volume.repo, "snapshots", "hhh"), "h");
      expect(volume.list(env).restic, name).to.equal(3);
      const blink = `printf x > "${ghost}"; rm -f "${ghost}"`;
      expect(volume.list(env, { DURING: blink }).restic, name).to.equal(3);
      fs.rmSync(path.join(volume.repo, "snapshots", "hhh"));
      expect(volume.list(env, { DURING: blink }), name).to.deep.include({
        stdout: "[aaa,ccc,]\n",
        restic: 4,
      });
      expect(volume.list(env).restic, name).to.equal(5);
      expect(volume.list(env).restic, name).to.equal(5);
      // Without a stat that prints the config's line there is no fingerprint: restic every time.
      const noStat = { PRELUDE: "stat() { return 127; }" };
      expect(volume.list(env, noStat).restic, name).to.equal(6);
      expect(volume.list(env, noStat).restic, name).to.equal(7);
      // A record that cannot be replaced (here a folder in its place): listed by restic every time, no error.
      fs.rmSync(volume.record);
      fs.mkdirSync(volume.record);
      fs.writeFileSync(path.join(volume.record, "x"), "");
      const unwritable = volume.list(env);
      expect(unwritable, name).to.deep.include({ code: 0, stdout: "[aaa,ccc,]\n", restic: 8 });
      expect(volume.list(env).restic, name).to.equal(9);
      expect(
        fs.readdirSync(volume.root).filter((f) => f.startsWith(".partial")),
        name,
      ).to.deep.equal([]);
      // restic failing: its code and message, and nothing kept.
      fs.rmSync(volume.record, { recursive: true });
      const failed = volume.list(env, { FAIL: "1" });
      expect(failed.code, name).to.equal(1);
      expect(fs.existsSync(volume.record), name).to.equal(false);
    }
  });
});
