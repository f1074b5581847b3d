import { expect } from "chai";
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRATCH_RESTORE_SCRIPT } from "../../../ops/backup/scratchRestore";

/**
 * The scratch server's half of a drill's or verify's test-restore, run by a real shell (and busybox's) with a
 * stand-in pg_restore: the staged dump's sha256 decides whether pg_restore runs at all.
 */
describe("the scratch server's restore of the staged dump, run by a real shell with a stand-in pg_restore", function () {
  const shells = [["sh"], ...(fs.existsSync("/bin/busybox") ? [["/bin/busybox", "sh"]] : [])];
  // The script's probe for OpenSSL's digest, replaced by `false`: `sha256sum`, as in an image without openssl.
  const probe = "openssl dgst -sha256 -r < /dev/null";
  let dir: string;
  let dump: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-scratch-restore-"));
    dump = path.join(dir, "scratch dump");
    fs.writeFileSync(dump, "PGDMP the dump's bytes\n");
    fs.mkdirSync(path.join(dir, "bin"));
    // Records its arguments, one per line.
    fs.writeFileSync(
      path.join(dir, "bin", "pg_restore"),
      `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/argv"\n[ -z "$FAIL" ] || { echo "pg_restore: error: boom" >&2; exit 1; }\n`,
      { mode: 0o755 },
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function run(shell: string[], sha256: string, digest: "openssl" | "sha256sum", fail = false) {
    expect(SCRATCH_RESTORE_SCRIPT).to.include(probe);
    const script =
      digest === "openssl"
        ? SCRATCH_RESTORE_SCRIPT
        : SCRATCH_RESTORE_SCRIPT.split(probe).join("false");
    return spawnSync(
      shell[0],
      [...shell.slice(1), "-c", script, "edms-scratch-restore", dump, sha256, "--no-owner"],
      {
        encoding: "utf8",
        env: {
          ...process.env,
          PATH: `${dir}/bin:${process.env.PATH}`,
          ...(fail ? { FAIL: "1" } : {}),
        },
      },
    );
  }

  const digests = [
    ...(spawnSync("sh", ["-c", probe]).status === 0 ? (["openssl"] as const) : []),
    "sha256sum" as const,
  ];
  for (const shell of shells) {
    for (const digest of digests) {
      it(`${shell.join(" ")} (${digest}): the recorded sha256 restores the file; pg_restore's failure is its exit`, function () {
        const sha = createHash("sha256").update(fs.readFileSync(dump)).digest("hex");
        const ok = run(shell, sha, digest);
        expect(ok.status).to.equal(0);
        expect(ok.stdout).to.equal(`${sha}\n`);
        expect(fs.readFileSync(`${dir}/argv`, "utf8").split("\n")).to.deep.equal([
          "-U",
          "edms",
          "-d",
          "edms",
          "--exit-on-error",
          "--no-owner",
          dump,
          "",
        ]);
        const failed = run(shell, sha, digest, true);
        expect(failed.status).to.equal(1);
        expect(failed.stderr).to.contain("boom");
      });

      it(`${shell.join(" ")} (${digest}): another sha256, or no file, prints what it read and never runs pg_restore`, function () {
        const other = run(shell, "0".repeat(64), digest);
        expect(other.status).to.equal(0);
        expect(other.stdout.trim()).to.match(/^[0-9a-f]{64}$/);
        expect(other.stdout.trim()).not.to.equal("0".repeat(64));
        fs.rmSync(dump);
        const none = run(shell, "0".repeat(64), digest);
        expect(none.status).to.equal(0);
        expect(none.stdout.trim()).not.to.equal("0".repeat(64));
        expect(fs.existsSync(`${dir}/argv`)).to.equal(false);
      });
    }
  }
});
