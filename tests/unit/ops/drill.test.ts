import { expect } from "chai";
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  checksumInput,
  chooseMedia,
  compareChecksums,
  parseDiff,
  parseMediaListing,
} from "../../../ops/backup/drill";
import { CHECKSUM_SCRIPT } from "../../../ops/backup/drill/checksums";
import { includePattern, restoresWhole } from "../../../ops/backup/drill/media";
import { rehearsalTarget } from "../../../ops/backup/drill/release";
import { LEFTOVER_FOLDERS_SCRIPT } from "../../../ops/backup/drill/scratch";
import type { Manifest } from "../../../ops/store/manifest";
import type { Settings } from "../../../model/settings";
import type { Deployment } from "../../../ops/store/records";
import type { MediaFile } from "../../../ops/backup/mediaCount";
import { newestGood } from "../../../ops/reports/health";

/** sub/<name> for each name in both trees under `root` (drill and live); the listing, as the snapshot's. */
function mediaTrees(
  root: string,
  names: readonly string[],
  content: (name: string, i: number) => string,
) {
  for (const dir of ["drill", "live"]) {
    fs.mkdirSync(path.join(root, dir, "sub"), { recursive: true });
    names.forEach((name, i) =>
      fs.writeFileSync(path.join(root, dir, "sub", name), content(name, i)),
    );
  }
  return names.map((name) => {
    const stat = fs.statSync(path.join(root, "live", "sub", name));
    return {
      path: `sub/${name}`,
      size: stat.size,
      mtime: Math.floor(stat.mtimeMs / 1000),
      ctime: Math.floor(stat.ctimeMs / 1000),
    };
  });
}

const SHELLS = ["sh", ...(fs.existsSync("/bin/busybox") ? ["/bin/busybox"] : [])];

/** CHECKSUM_SCRIPT reading the trees under `root`, and its arguments for `shell`. */
function scriptArgs(root: string, shell: string, flags: string): string[] {
  const script = CHECKSUM_SCRIPT.split('"/drill/')
    .join(`"${root}/drill/`)
    .split('"/live/')
    .join(`"${root}/live/`);
  return shell === "/bin/busybox" ? ["sh", flags, script] : [flags, script];
}

/** The script's probe for OpenSSL's digest: replaced by `false`, it takes `sha256sum` (an image without openssl). */
const OPENSSL_PROBE = "openssl dgst -sha256 -r < /dev/null";

/**
 * CHECKSUM_SCRIPT over the trees under `root`, by sh and (when there) busybox's sh, with `flags`; each both
 * with OpenSSL's digest (when this host has it) and with `sha256sum`.
 */
function checksumRuns(root: string, files: readonly MediaFile[], flags = "-c") {
  expect(CHECKSUM_SCRIPT).to.include(OPENSSL_PROBE);
  const digests = [
    ...(spawnSync("sh", ["-c", OPENSSL_PROBE]).status === 0 ? ["openssl"] : []),
    "sha256sum",
  ];
  return SHELLS.flatMap((shell) =>
    digests.map((digest) => {
      const args = scriptArgs(root, shell, flags);
      if (digest === "sha256sum") {
        args[args.length - 1] = args[args.length - 1].split(OPENSSL_PROBE).join("false");
      }
      const run = spawnSync(shell, args, { input: checksumInput(files), encoding: "utf8" });
      return { shell: `${shell} (${digest})`, stdout: run.stdout, stderr: run.stderr };
    }),
  );
}

/** Writes `bytes` into the FIFO once a reader has it open (up to 10 s); false when none came. */
async function feedFifo(fifo: string, bytes: string): Promise<boolean> {
  for (let i = 0; i < 100; i += 1) {
    try {
      const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      fs.writeSync(fd, bytes);
      fs.closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENXIO") {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return false;
}

describe("drill: which media files are checksummed", function () {
  // As `restic ls --recursive --json` (0.14) prints them: the snapshot first, then one node per line.
  const listing = [
    '{"time":"2026-11-27T15:00:00Z","paths":["/edms/database","/edms/media"],"struct_type":"snapshot"}',
    '{"name":"media","type":"dir","path":"/edms/media","mtime":"2026-11-27T14:59:00.5Z","struct_type":"node"}',
    '{"name":"a.bin","type":"file","path":"/edms/media/documents/a.bin","size":2048,"mtime":"2026-11-27T14:58:01.999999999Z","ctime":"2026-11-27T14:58:05.5Z","struct_type":"node"}',
    '{"name":"b.bin","type":"file","path":"/edms/media/documents/b.bin","size":10,"mtime":"2026-11-27T14:58:02Z","struct_type":"node"}',
    '{"name":"c.bin","type":"file","path":"/edms/media/c.bin","size":0,"mtime":"2026-11-27T14:58:03Z","struct_type":"node"}',
  ].join("\n");

  it("reads files only, relative to the media root, with mtime and ctime (when listed) in whole seconds", function () {
    expect(parseMediaListing(listing)).to.deep.equal([
      {
        path: "documents/a.bin",
        size: 2048,
        mtime: Date.parse("2026-11-27T14:58:01Z") / 1000,
        ctime: Date.parse("2026-11-27T14:58:05Z") / 1000,
      },
      { path: "documents/b.bin", size: 10, mtime: Date.parse("2026-11-27T14:58:02Z") / 1000 },
      { path: "c.bin", size: 0, mtime: Date.parse("2026-11-27T14:58:03Z") / 1000 },
    ]);
  });

  it("takes added and modified media files from restic diff --json, not removed ones, dirs or the database; names with a newline whole", function () {
    const change = (modifier: string, path: string) =>
      JSON.stringify({ message_type: "change", path, modifier });
    const diff = [
      change("M", "/edms/database/db.dump"),
      change("+", "/edms/media/documents/"),
      change("+", "/edms/media/documents/new file.bin"),
      change("M", "/edms/media/c.bin"),
      change("-", "/edms/media/gone.bin"),
      change("U", "/edms/media/documents/a.bin"),
      change("+", "/edms/media/two\nlines\t.pdf"),
      '{"message_type":"statistics","changed_files":1}',
    ].join("\n");
    expect(parseDiff(diff)).to.deep.equal(["documents/new file.bin", "c.bin", "two\nlines\t.pdf"]);
  });

  it("checksums restored files by position, whatever their names hold (newline, tab, backslash, a leading dash, a trailing newline)", function () {
    // Its real path: realpath is how the script knows a live file is itself.
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "edms-drill-names-")));
    const names = [
      "two\nlines\t.pdf",
      "back\\slash",
      "-rf",
      "ends\n",
      "ü *.bin",
      "plain.bin",
      "second.bin",
    ];
    try {
      const files = mediaTrees(root, names, (name) => `bytes of ${name}`);
      for (const { shell, stdout, stderr } of checksumRuns(root, files)) {
        const { problems, checksums, againstLive } = compareChecksums(files, stdout);
        expect(problems, `${shell}: ${stderr}`).to.deep.equal([]);
        expect(Object.keys(checksums), shell).to.have.length(names.length);
        expect(againstLive, shell).to.equal(names.length);
      }
      // A live symlink where the file was (a compromised web can plant one), crafted to match the listing's
      // size and mtime: never followed, so it can neither pass for the reference nor fail the drill.
      const link = path.join(root, "live", "sub", "plain.bin");
      const plain = files.find((f) => f.path === "sub/plain.bin")!;
      fs.rmSync(link);
      // A relative target as long as the file was: the link's own size matches the listing's.
      const target = `../../${"e".repeat(plain.size - 6)}`;
      fs.writeFileSync(path.join(root, "live", "sub", target), "other bytes");
      fs.symlinkSync(target, link);
      fs.lutimesSync(link, plain.mtime, plain.mtime);
      expect(fs.lstatSync(link).size).to.equal(plain.size);
      for (const { shell, stdout } of checksumRuns(root, files)) {
        const compared = compareChecksums(files, stdout);
        expect(compared.problems, shell).to.deep.equal([]);
        expect(compared.againstLive, shell).to.equal(names.length - 1);
      }
      // A file the restore lacks is named by its own path, a plain name (checked in the batch) or not; a
      // restored file whose bytes differ from the live one the backup read fails.
      fs.rmSync(path.join(root, "drill", "sub", "ends\n"));
      fs.rmSync(path.join(root, "drill", "sub", "-rf"));
      fs.writeFileSync(path.join(root, "drill", "sub", "second.bin"), "BYTES of second.bin");
      for (const { shell, stdout } of checksumRuns(root, files)) {
        expect(compareChecksums(files, stdout).problems, shell).to.have.members([
          "sub/-rf: not restored",
          "sub/ends\n: not restored",
          "sub/second.bin: sha256 differs from the live file the backup read",
        ]);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("never takes as the live reference a file rewritten since the backup with its size and mtime put back (its ctime differs), nor one the listing gives no ctime", function () {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "edms-drill-ctime-")));
    try {
      const names = ["plain.bin", "odd name.bin", "old.bin"];
      const files = mediaTrees(root, names, (name) => `bytes of ${name}`);
      // A compromised web rewrites two uploads with as many bytes and sets their mtime back: the backup read
      // them before (its listing's ctime is older than theirs now).
      for (const name of ["plain.bin", "odd name.bin"]) {
        const live = path.join(root, "live", "sub", name);
        const { size, mtime } = files.find((f) => f.path === `sub/${name}`)!;
        fs.writeFileSync(live, "X".repeat(size));
        fs.utimesSync(live, mtime, mtime);
      }
      const read = files.map((f) =>
        f.path === "sub/old.bin" ? { ...f, ctime: undefined } : { ...f, ctime: f.ctime! - 5 },
      );
      for (const { shell, stdout, stderr } of checksumRuns(root, read)) {
        const compared = compareChecksums(read, stdout);
        expect(compared.problems, `${shell}: ${stderr}`).to.deep.equal([]);
        expect(compared.againstLive, shell).to.equal(0);
      }
      // The same files as the listing had them at backup (ctime as it is): the rewrite is found.
      const now = files.map((f) => ({
        ...f,
        ctime: Math.floor(fs.statSync(path.join(root, "live", f.path)).ctimeMs / 1000),
      }));
      for (const { shell, stdout } of checksumRuns(root, now)) {
        expect(compareChecksums(now, stdout).problems, shell).to.have.members([
          "sub/plain.bin: sha256 differs from the live file the backup read",
          "sub/odd name.bin: sha256 differs from the live file the backup read",
        ]);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("never takes as the live reference a file reached through a symlinked folder (the restored copy compared with itself)", function () {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "edms-drill-linkdir-")));
    try {
      const names = ["plain.bin", "odd name.bin"];
      const files = mediaTrees(root, names, (name) => `bytes of ${name}`);
      // A compromised web replaces its folder with a link to where the drill restores: same names, sizes
      // and times, so every check by name and stat alone passes.
      fs.rmSync(path.join(root, "live", "sub"), { recursive: true });
      fs.symlinkSync(path.join(root, "drill", "sub"), path.join(root, "live", "sub"));
      // A restored file the restore damaged: compared with itself it would pass.
      fs.writeFileSync(path.join(root, "drill", "sub", "plain.bin"), "BYTES of plain.bin");
      for (const { shell, stdout, stderr } of checksumRuns(root, files)) {
        const compared = compareChecksums(files, stdout);
        expect(compared.againstLive, `${shell}: ${stderr}`).to.equal(0);
        expect(compared.problems, shell).to.deep.equal([]);
        expect(Object.keys(compared.checksums), shell).to.have.length(names.length);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("waits for the restored copy's hashes however long they take (a restored file that is a FIFO, fed late)", async function () {
    // Up to 10 s per shell for the reader to come, on a loaded host.
    this.timeout(60_000);
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "edms-drill-wait-"));
    try {
      const files = mediaTrees(root, ["late.bin", "early.bin"], (name) => `bytes of ${name}`);
      const fifo = path.join(root, "drill", "sub", "late.bin");
      for (const shell of SHELLS) {
        fs.rmSync(fifo, { force: true });
        execFileSync("mkfifo", [fifo]);
        const child = spawn(shell, scriptArgs(root, shell, "-euc"));
        let stdout = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        const exited = new Promise((resolve) => child.on("close", resolve));
        child.stdin.end(checksumInput(files));
        // The restored file's hash cannot finish before the FIFO is fed: a script done by then did not wait.
        const ended = await Promise.race([
          exited.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 1000)),
        ]);
        const fed = await feedFifo(fifo, "late bytes");
        await exited;
        expect(ended, `${shell}: the script ended before the restored file was read`).to.equal(
          false,
        );
        expect(fed, shell).to.equal(true);
        expect(compareChecksums(files, stdout).problems, shell).to.deep.equal([
          `sub/late.bin: 0 bytes restored, the snapshot has ${files[0].size}`,
        ]);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("answers for every file of a batch that xargs splits, with odd names between", function () {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "edms-drill-batch-"));
    // Long plain names, so xargs runs sha256sum several times on each side; an odd name every 400th.
    const names = Array.from({ length: 1500 }, (_, i) =>
      i % 400 === 7 ? `odd name ${i}\t.pdf` : `${"d".repeat(120)}-${i}.bin`,
    );
    try {
      const files = mediaTrees(root, names, (_, i) => `file ${i}`);
      // One restored file differs from the live one, one is missing: each is named, nothing else.
      fs.writeFileSync(path.join(root, "drill", "sub", names[1000]), "FILE 1000");
      fs.rmSync(path.join(root, "drill", "sub", names[1207]));
      for (const { shell, stdout, stderr } of checksumRuns(root, files, "-euc")) {
        const { problems, checksums, againstLive } = compareChecksums(files, stdout);
        expect(problems, `${shell}: ${stderr}`).to.have.members([
          `sub/${names[1000]}: sha256 differs from the live file the backup read`,
          `sub/${names[1207]}: not restored`,
        ]);
        expect(Object.keys(checksums), shell).to.have.length(names.length - 2);
        expect(againstLive, shell).to.equal(names.length - 2);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("checks every changed file plus a random sample of the rest; everything without a previous drill", function () {
    const files = parseMediaListing(listing);
    const first = () => 0;
    expect(chooseMedia(files, ["c.bin"], 1, first).map((f) => f.path)).to.deep.equal([
      "c.bin",
      "documents/a.bin",
    ]);
    expect(chooseMedia(files, [], 0, first)).to.deep.equal([]);
    expect(chooseMedia(files, ["c.bin"], 10, first)).to.have.length(3);
    expect(chooseMedia(files, null, 0, first)).to.deep.equal(files);
  });
});

describe("drill: restic include patterns of the files a later drill restores", function () {
  it("anchors each at the restored folder's root and escapes glob characters, leaving other bytes as they are", function () {
    expect(includePattern("documents/a.bin")).to.equal("/documents/a.bin");
    expect(includePattern("odd/-rf/--help")).to.equal("/odd/-rf/--help");
    expect(includePattern("odd/[x]*?.txt")).to.equal("/odd/\\[x]\\*\\?.txt");
    expect(includePattern("odd/back\\slash")).to.equal("/odd/back\\\\slash");
    // A leading `!` would negate a pattern; behind the anchoring slash it is a plain byte.
    expect(includePattern("!keep $HOME\ttab\nline")).to.equal("/!keep $HOME\ttab\nline");
  });

  it("restores everything without a previous drill, when nothing is left out, or when matching would cost more", function () {
    const files = (n: number, name = (i: number) => `f${i}`) =>
      Array.from({ length: n }, (_, i) => ({ path: name(i), size: 1, mtime: 0 }));
    const all = files(11);
    expect(restoresWhole(all, null, all.slice(0, 3))).to.equal(true);
    expect(restoresWhole(all, [], all)).to.equal(true);
    expect(restoresWhole(all, [], all.slice(0, 8))).to.equal(false);
    expect(restoresWhole(all, [], [])).to.equal(false);
    // A file named in bytes that are not UTF-8 is never chosen: it does not make a first drill partial.
    expect(restoresWhole([...all, { path: "\uFFFD", size: 1, mtime: 0 }], null, all)).to.equal(
      true,
    );
    const many = files(100_000);
    expect(restoresWhole(many, [], many.slice(0, 100))).to.equal(false);
    expect(restoresWhole(many, [], many.slice(0, 101))).to.equal(true);
    // Odd names travel as arguments: a few are fine, 64 KiB of them are not.
    const odd = files(2_000, (i) => `odd name ${"x".repeat(30)} ${i}`);
    expect(restoresWhole(odd, [], odd.slice(0, 10))).to.equal(false);
    expect(restoresWhole(odd, [], odd.slice(0, 1_500))).to.equal(true);
  });
});

describe("health: the newest good backup", function () {
  const entry = (id: string, time: string) => ({
    id,
    snapshot: id,
    time,
    reason: "manual",
    release: "2.0.0",
    stack: "s",
    paths: [],
  });
  const complete = [
    entry("a", "2026-11-27T00:00:00Z"),
    entry("b", "2026-11-27T06:00:00Z"),
    entry("c", "2026-11-27T09:00:00Z"),
  ];
  const now = Date.parse("2026-11-27T12:00:00Z");

  it("is the newest backup whose latest drill did not fail; undrilled backups count", function () {
    expect(newestGood(complete, new Map(), now)).to.deep.equal({
      newestGood: "c",
      time: "2026-11-27T09:00:00Z",
      ageHours: 3,
      failedDrills: [],
    });
    const drills = new Map([
      ["c", false],
      ["b", false],
      ["a", true],
    ]);
    expect(newestGood(complete, drills, now)).to.deep.include({
      newestGood: "a",
      ageHours: 12,
      failedDrills: ["c", "b"],
    });
  });

  it("is never a backup dated after the host's clock", function () {
    const ahead = entry("z", "2026-11-28T12:00:00Z");
    expect(newestGood([...complete, ahead], new Map(), now).newestGood).to.equal("c");
  });

  it("is none when there is no backup, or every one failed its drill", function () {
    expect(newestGood([], new Map(), now).newestGood).to.equal(null);
    expect(newestGood(complete.slice(0, 1), new Map([["a", false]]), now)).to.deep.equal({
      newestGood: null,
      time: null,
      ageHours: null,
      failedDrills: ["a"],
    });
  });
});

describe("drill: what the pre-deploy drill rehearses", function () {
  const A = `sha256:${"a".repeat(64)}`;
  const B = `sha256:${"b".repeat(64)}`;
  const settings = { version: "2.0.0", backendImage: "edms/backend" } as Settings;
  const pinned = { ...settings, releaseDigest: B } as Settings;
  const manifest = (fields: Partial<Manifest>) => fields as Manifest;
  const ran = (version: string, digest: string) =>
    ({ version, reference: `edms/backend:${version}@${digest}` }) as Deployment;

  it("the backup's target release when it is another than the backup's own", function () {
    expect(
      rehearsalTarget(settings, manifest({ version: "1.0.0", targetVersion: "2.0.0" }), []),
    ).to.equal("2.0.0");
    // A backup no web's release labelled: the configured one stands for its release.
    expect(
      rehearsalTarget(settings, manifest({ version: null, targetVersion: "3.0.0" }), []),
    ).to.equal("3.0.0");
  });

  it("the same version pinned to other content than it ran by: a rebuilt release is rehearsed", function () {
    const same = manifest({ version: "2.0.0", targetVersion: "2.0.0" });
    expect(rehearsalTarget(pinned, same, [ran("2.0.0", A)])).to.equal("2.0.0");
    // The digest it ran by: nothing new to migrate.
    expect(rehearsalTarget(pinned, same, [ran("2.0.0", A), ran("2.0.0", B)])).to.equal(null);
  });

  it("nothing (so no media restore of every file) for a redeploy of the backup's release or no target", function () {
    expect(
      rehearsalTarget(settings, manifest({ version: "1.0.0", targetVersion: "1.0.0" }), []),
    ).to.equal(null);
    expect(rehearsalTarget(settings, manifest({ version: "1.0.0" }), [])).to.equal(null);
    expect(
      rehearsalTarget(settings, manifest({ version: null, targetVersion: "2.0.0" }), []),
    ).to.equal(null);
    expect(
      rehearsalTarget(pinned, manifest({ version: "2.0.0", targetVersion: "2.0.0" }), []),
    ).to.equal(null);
    // An older release's own pre-deploy backup: no other content of it is configured to deploy.
    expect(
      rehearsalTarget(pinned, manifest({ version: "1.0.0", targetVersion: "1.0.0" }), [
        ran("1.0.0", A),
      ]),
    ).to.equal(null);
  });
});

describe("drill: the leftovers of a killed drill in a shared drillScratch folder", function () {
  it("removes this stack's drill folders only, not those of a stack whose prefix begins with it and `-drill-`", function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drill-scratch-"));
    try {
      const folders = [
        "a-drill-0f3c9e",
        "a-drill-x-drill-0f3c9e",
        "a-drill-0f3c9e7",
        "ab-drill-0f3c9e",
      ];
      folders.forEach((f) => fs.mkdirSync(path.join(dir, f, "media"), { recursive: true }));
      const script = LEFTOVER_FOLDERS_SCRIPT.split("/scratch/").join(`${dir}/`);
      for (const shell of ["sh", "/bin/busybox"]) {
        execFileSync(shell, [...(shell === "sh" ? [] : ["sh"]), "-c", script, "sh", "a"]);
      }
      expect(fs.readdirSync(dir).sort()).to.deep.equal(folders.slice(1).sort());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
