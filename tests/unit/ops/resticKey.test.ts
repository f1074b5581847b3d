import { expect } from "chai";
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BACKUPS_DIR, LAYOUT } from "../../../ops/store/layout";
import { INSTALL_SCRIPT, REPOSITORY_STATE } from "../../../ops/store/fastKey";
import { KEYS_DIR, PASSWORD_FILE, REPOSITORY, RESTIC_PRELUDE } from "../../../ops/store/restic";
import { FAST_KDF, fastKeyFile, openKeyFile } from "../../../ops/store/resticKey";
import { testShells } from "../../harness/shells";

/** A key file restic 0.18's `init` wrote, its test-only password and what `restic cat masterkey` printed. */
const fixture = JSON.parse(
  fs.readFileSync(path.join(__dirname, "../fixtures/restic-key.json"), "utf8"),
) as { password: string; id: string; keyFile: string; masterKey: unknown };
const resticsOwn = Buffer.from(fixture.keyFile, "base64");
const password = Buffer.from(fixture.password);

describe("the repository's fast key, in restic's key file format", () => {
  it("opens restic's own key file to the master key restic printed: the same scrypt, AES-CTR and Poly1305-AES", () => {
    const master = openKeyFile(password, resticsOwn) as Buffer;
    expect(JSON.parse(master.toString("utf8"))).to.deep.equal(fixture.masterKey);
    // restic names a file by the SHA-256 of its content, as fastKeyFile names the new one.
    expect(createHash("sha256").update(resticsOwn).digest("hex")).to.equal(fixture.id);
  });

  it("opens nothing with a wrong password or any changed byte of the sealed data (the MAC), never garbage", () => {
    expect(openKeyFile(Buffer.from(`${fixture.password}x`), resticsOwn)).to.equal(null);
    // Flipped bits in the IV, the ciphertext and the MAC of a key sealed here (cheap to open).
    const key = fastKeyFile(password, Buffer.from(JSON.stringify(fixture.masterKey)), new Date());
    const file = JSON.parse(key.content.toString("utf8"));
    const data = Buffer.from(file.data, "base64");
    expect(openKeyFile(password, key.content)).not.to.equal(null);
    for (const at of [0, 20, data.length - 1]) {
      const changed = Buffer.from(data);
      changed[at] ^= 1;
      const tampered = Buffer.from(JSON.stringify({ ...file, data: changed.toString("base64") }));
      expect(openKeyFile(password, tampered), `byte ${at}`).to.equal(null);
    }
  });

  it("seals the same master key under scrypt's default cost, a fresh salt and IV each time, named by its hash", () => {
    const master = Buffer.from(JSON.stringify(fixture.masterKey));
    const made = [1, 2].map(() => fastKeyFile(password, master, new Date("2026-12-06T00:00:00Z")));
    for (const key of made) {
      const file = JSON.parse(key.content.toString("utf8"));
      expect(file).to.include({ kdf: "scrypt", ...FAST_KDF });
      expect(Buffer.from(file.salt, "base64")).to.have.length(64);
      expect(key.id).to.equal(createHash("sha256").update(key.content).digest("hex"));
      expect(openKeyFile(password, key.content)?.equals(master)).to.equal(true);
      expect(openKeyFile(Buffer.from("another"), key.content)).to.equal(null);
    }
    expect(made[0].id).not.to.equal(made[1].id);
  });
});

describe("the key hint every restic started by a backup script reads", () => {
  let root: string;
  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "key-hint-"))));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  /** lrestic's argv (restic faked) with the hint file holding `content` (undefined: no file). */
  function argv(env: NodeJS.ProcessEnv, content: string | undefined): string {
    const hint = path.join(root, "hint");
    fs.rmSync(hint, { force: true });
    if (content !== undefined) {
      fs.writeFileSync(hint, content);
    }
    const prelude = RESTIC_PRELUDE.split(LAYOUT.keyHint).join(hint);
    const script = `restic() { printf '%s|' "$@"; }\n${prelude}\nlrestic snapshots`;
    const run = spawnSync("sh", ["-euc", script], { env, cwd: root });
    expect(run.status, run.stderr.toString()).to.equal(0);
    return run.stdout.toString("utf8").split("|").slice(5).join("|");
  }

  it("passes --key-hint only for a key id; no file, an empty one or anything else passes nothing", () => {
    const id = "a".repeat(40) + "0123456789abcdef01234567";
    for (const { name, env } of testShells(root, ["printf"])) {
      expect(argv(env, `${id}\n`), name).to.equal(`--key-hint|${id}|snapshots|`);
      expect(argv(env, id), `${name}: no newline`).to.equal(`--key-hint|${id}|snapshots|`);
      for (const hostile of [
        undefined,
        "",
        "\n",
        id.toUpperCase(),
        `${id} --password-file /etc/shadow`,
        "--no-lock",
        "$(touch pwned)",
        "`touch pwned`",
        "ab*",
        "a b",
      ]) {
        expect(argv(env, hostile), `${name}: ${JSON.stringify(hostile)}`).to.equal("snapshots|");
      }
      expect(fs.existsSync(path.join(root, "pwned")), name).to.equal(false);
    }
  });
});

describe("installing the fast key (fastKey.ts), restic faked", () => {
  let root: string;
  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "fast-key-"))));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  /** INSTALL_SCRIPT over a repository in a folder; restic opens the scratch copy when `opens`. */
  function install(env: NodeJS.ProcessEnv, name: string, opens: boolean) {
    const base = path.join(root, name);
    const repo = path.join(base, "restic");
    const hint = path.join(base, ".restic-key-hint");
    fs.mkdirSync(path.join(repo, "keys"), { recursive: true });
    fs.writeFileSync(path.join(repo, "config"), "config");
    fs.chmodSync(path.join(repo, "config"), 0o400);
    fs.writeFileSync(path.join(repo, "keys", "calibrated"), "restic's own");
    const script = INSTALL_SCRIPT.split(REPOSITORY)
      .join(repo)
      .split(LAYOUT.keyHint)
      .join(hint)
      .split(PASSWORD_FILE)
      .join(path.join(base, "password"))
      .split(BACKUPS_DIR)
      .join(base);
    // The fake checks what the real one is given: a scratch repository holding the config and the new key only.
    // With the stored password's file, nothing else.
    const restic = `restic() { [ "$6" = "${path.join(base, "password")}" ] && [ "$(ls "$4/keys")" = "$ID" ] && [ -f "$4/config" ] && ${opens ? "true" : "{ echo 'Fatal: wrong password or no key found' >&2; return 12; }"}; }`;
    const scratch = path.join(base, ".key-check-1");
    const run = spawnSync("sh", ["-euc", `${restic}\n${script}`, "sh", "a1b2", scratch], {
      env: { ...env, ID: "a1b2" },
      input: "the key file",
    });
    return { run, repo, hint, scratch };
  }

  it("moves the key into keys/ and names it in the hint only once restic opened the copy holding only it", () => {
    const tools = ["rm", "mkdir", "cat", "cp", "chmod", "stat", "mv", "printf", "ls", "sync"];
    for (const { name, env } of testShells(root, tools)) {
      const ok = install(env, `${name}-ok`, true);
      expect(ok.run.status, ok.run.stderr.toString()).to.equal(0);
      expect(fs.readdirSync(path.join(ok.repo, "keys")).sort(), name).to.deep.equal([
        "a1b2",
        "calibrated",
      ]);
      expect(fs.readFileSync(path.join(ok.repo, "keys", "a1b2"), "utf8")).to.equal("the key file");
      expect(fs.statSync(path.join(ok.repo, "keys", "a1b2")).mode & 0o777, name).to.equal(0o400);
      expect(fs.readFileSync(ok.hint, "utf8"), name).to.equal("a1b2\n");
      expect(fs.existsSync(ok.scratch), name).to.equal(false);

      const refused = install(env, `${name}-refused`, false);
      expect(refused.run.status, name).not.to.equal(0);
      expect(refused.run.stderr.toString(), name).to.contain("wrong password");
      expect(fs.readdirSync(path.join(refused.repo, "keys")), name).to.deep.equal(["calibrated"]);
      expect(fs.existsSync(refused.hint), name).to.equal(false);
      expect(fs.existsSync(refused.scratch), name).to.equal(false);
    }
  });
});

describe("the repository's state before a backup (fastKey.ts REPOSITORY_STATE), restic faked", () => {
  let root: string;
  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "repo-state-"))));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("is fast only when the hint names a key that alone opens the repository with the stored password; a failed check is unknown", () => {
    const tools = ["rm", "mkdir", "cp", "mv", "printf", "cat", "stat"];
    const shells = testShells(root, tools);
    // Debian's busybox has no flock applet (the official restic image's has); util-linux's stands in.
    if (shells.length > 1) {
      fs.symlinkSync("/usr/bin/flock", path.join(root, "busybox", "flock"));
    }
    for (const { name, env } of shells) {
      const base = path.join(root, name);
      const repo = path.join(base, "restic");
      const hint = path.join(base, ".restic-key-hint");
      const password = path.join(base, "password");
      const scratch = path.join(base, ".key-check-1");
      const proved = path.join(base, ".restic-key-proved");
      const started = path.join(base, "restic-started");
      // The fake opens, with the stored password's file, a copy holding the config and exactly one key whose
      // content is "opens"; another key is another password's (restic's exit 12), "broken" fails otherwise.
      // Each start is counted, and fails (99, so `unknown`) unless the keys folder's lock is held.
      const lock = path.join(base, ".lock");
      const restic = `restic() { printf x >> "${started}"; ! flock -n "${lock}" true || return 99; [ "$6" = "${password}" ] && [ -f "$4/config" ] || return 1; case "$(cat "$4"/keys/*)" in opens) ;; broken) return 1 ;; *) return 12 ;; esac; }`;
      const prelude = RESTIC_PRELUDE.split(LAYOUT.keyHint).join(hint);
      const script = [REPOSITORY_STATE, prelude]
        .map((s) =>
          s
            .split(REPOSITORY)
            .join(repo)
            .split(PASSWORD_FILE)
            .join(password)
            .split(LAYOUT.keyProved)
            .join(proved)
            .split(KEYS_DIR)
            .join(base),
        )
        .reverse()
        .join("\n");
      const starts = () => (fs.existsSync(started) ? fs.readFileSync(started, "utf8").length : 0);
      const state = () => {
        const run = spawnSync("sh", ["-euc", `${restic}\n${script}`, "sh", scratch], { env });
        expect(run.status, run.stderr.toString()).to.equal(0);
        expect(fs.existsSync(scratch), `${name}: scratch left`).to.equal(false);
        return run.stdout.toString().trim();
      };
      fs.mkdirSync(path.join(repo, "keys"), { recursive: true });
      expect(state(), name).to.equal("nokey");
      fs.writeFileSync(password, "secret");
      expect(state(), name).to.equal("missing");
      fs.writeFileSync(path.join(repo, "config"), "config");
      fs.writeFileSync(path.join(repo, "keys", "aa11"), "opens");
      fs.writeFileSync(path.join(repo, "keys", "bb22"), "another password's");
      expect(state(), `${name}: no hint`).to.equal("slow");
      fs.writeFileSync(hint, "cc33\n");
      expect(state(), `${name}: a key that is gone`).to.equal("slow");
      fs.writeFileSync(hint, "bb22\n");
      expect(state(), `${name}: a key the password does not open`).to.equal("slow");
      fs.writeFileSync(hint, "../keys/aa11\n");
      expect(state(), `${name}: not a key id`).to.equal("slow");
      fs.writeFileSync(path.join(repo, "keys", "dd44"), "broken");
      fs.writeFileSync(hint, "dd44\n");
      expect(state(), `${name}: the check failed`).to.equal("unknown");
      expect(fs.existsSync(proved), `${name}: nothing proved yet`).to.equal(false);
      fs.rmSync(path.join(repo, "keys", "dd44"));
      fs.writeFileSync(hint, "aa11\n");
      let before = starts();
      expect(state(), name).to.equal("fast");
      expect(starts(), `${name}: proved by restic`).to.equal(before + 1);
      const file = fs.statSync(password);
      const proof = `aa11 ${file.ino} ${file.size} ${Math.floor(file.mtimeMs / 1000)}\n`;
      expect(fs.readFileSync(proved, "utf8"), name).to.equal(proof);
      expect(fs.readdirSync(path.join(repo, "keys")).sort(), name).to.deep.equal(["aa11", "bb22"]);
      // Proved with this password file: no restic at all.
      before = starts();
      expect(state(), `${name}: proved before`).to.equal("fast");
      expect(starts(), `${name}: proved before`).to.equal(before);
      // Another key hinted than the one proved: restic again.
      fs.writeFileSync(hint, "bb22\n");
      expect(state(), `${name}: another key hinted`).to.equal("slow");
      expect(starts(), `${name}: another key hinted`).to.equal(before + 1);
      // A password stored since, as keys.ts stores one (a new file renamed into place, its time whatever the
      // unpacked file had): restic again, 12 for a password the key is not for, and no proof recorded.
      fs.writeFileSync(hint, "aa11\n");
      fs.writeFileSync(`${password}.new`, "rotated");
      fs.utimesSync(`${password}.new`, file.atime, file.mtime);
      fs.renameSync(`${password}.new`, password);
      before = starts();
      const rotated = `restic() { printf x >> "${started}"; return 12; }`;
      const run = spawnSync("sh", ["-euc", `${rotated}\n${script}`, "sh", scratch], { env });
      expect(run.stdout.toString().trim(), `${name}: a password stored since`).to.equal("slow");
      expect(starts(), `${name}: a password stored since`).to.equal(before + 1);
      expect(fs.readFileSync(proved, "utf8"), `${name}: no proof recorded`).to.equal(proof);
    }
  });
});
