/**
 * `backups export <id> --plain`: the refusals of `--to`, the manifest and SHA256SUMS an operator checks with
 * `sha256sum -c`, and the writer against a stand-in lock container: byte-identical db.dump, nothing kept when
 * a check or a stream fails. The real restic/pg_restore round trip is tests/e2e/export.test.ts.
 */
import { expect } from "chai";
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Writable } from "stream";
import * as YAML from "yaml";
import { exportPlain, PlainWriter } from "../../../ops/backup/plainExport";
import {
  MEDIA_EXTRACT,
  PLAIN_FORMAT,
  plainManifest,
  plainTarget,
  sha256sums,
} from "../../../ops/backup/plainFormat";
import { OpsError } from "../../../ops/core/errors";
import { setQuiet } from "../../../ops/core/log";
import type { RunOptions, RunResult } from "../../../ops/engine/docker";
import type { OpsSession } from "../../../ops/engine/session";
import { Manifest } from "../../../ops/store/manifest";
import { BackupEntry } from "../../../ops/store/restic";
import { ensureCliBuilt } from "../../harness/build";
import { REPO_ROOT } from "../../harness/mocks";

const ID = "2026-11-25T14-00-00Z-manual";
const DUMP = Buffer.from("PGDMP\u0000custom format, not compressed\u0001\u0002");
const MEDIA_TAR = Buffer.alloc(10240, 7);
const sha = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

const manifest = (overrides: Partial<Manifest> = {}): Manifest => ({
  format: 2,
  id: ID,
  stack: "staging",
  environment: "staging",
  reason: "manual",
  createdAt: "2026-11-25T14:00:00Z",
  version: "1.0.0",
  postgresVolume: "edms_postgres_data",
  database: { file: "db.dump", bytes: DUMP.length, sha256: sha(DUMP) },
  tables: { auth_user: 2, documents_document: 3 },
  objects: { schemas: 1 },
  migrations: { documents: "0002_slug" },
  ...overrides,
});

const entry: BackupEntry = {
  id: ID,
  snapshot: "f".repeat(64),
  time: "2026-11-25T14:00:01Z",
  reason: "manual",
  release: "1.0.0",
  stack: "staging",
  paths: ["/edms/database", "/edms/media"],
};

let tmp: string;
beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "edms-plain-"))));
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("plain export: --to and the target folder", function () {
  const refusal = (fn: () => unknown): OpsError => {
    try {
      fn();
    } catch (err) {
      return err as OpsError;
    }
    throw new Error("not refused");
  };

  it("refuses a DIR that does not exist or is a file, naming --to; creates nothing", function () {
    for (const to of [path.join(tmp, "missing"), path.join(tmp, "file")]) {
      fs.rmSync(path.join(tmp, "file"), { force: true });
      fs.writeFileSync(path.join(tmp, "file"), "x");
      const err = refusal(() => plainTarget(to, ID));
      expect(err.exitCode, to).to.equal(2);
      expect(err.message).to.match(/^`--to .*`: .* is not an existing directory/);
      expect(fs.existsSync(path.join(tmp, "missing"))).to.equal(false);
    }
  });

  it("refuses DIR/<id> that holds anything, and an id that is not one", function () {
    fs.mkdirSync(path.join(tmp, ID));
    fs.writeFileSync(path.join(tmp, ID, "db.dump"), "someone else's");
    const err = refusal(() => plainTarget(tmp, ID));
    expect(err.exitCode).to.equal(2);
    expect(err.message).to.match(/already exists and is not an empty folder of yours. Nothing was/);
    expect(fs.readFileSync(path.join(tmp, ID, "db.dump"), "utf8")).to.equal("someone else's");
    for (const id of ["../escape", `${ID}/..`, "-rf"]) {
      expect(refusal(() => plainTarget(tmp, id)).exitCode, id).to.equal(2);
    }
  });

  it("refuses DIR/<id> that is a link, even to an empty folder", function () {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), "edms-elsewhere-"));
    fs.symlinkSync(elsewhere, path.join(tmp, ID));
    expect(refusal(() => plainTarget(tmp, ID)).message).to.match(/not an empty folder of yours/);
    fs.rmSync(path.join(tmp, ID));
    fs.symlinkSync(path.join(tmp, "nowhere"), path.join(tmp, ID));
    expect(refusal(() => plainTarget(tmp, ID)).message).to.match(/not an empty folder of yours/);
  });

  it("takes an absent or empty DIR/<id>, always as an absolute path (never read as an option)", function () {
    fs.mkdirSync(path.join(tmp, "-x"));
    const relative = path.relative(process.cwd(), path.join(tmp, "-x"));
    const absent = plainTarget(relative, ID);
    expect(absent).to.deep.equal({ target: path.join(tmp, "-x", ID), exists: false });
    expect(path.isAbsolute(absent.target)).to.equal(true);
    fs.mkdirSync(path.join(tmp, "-x", ID));
    expect(plainTarget(relative, ID).exists).to.equal(true);
  });
});

describe("plain export: manifest.json and SHA256SUMS", function () {
  const files = {
    "db.dump": { sha256: sha(DUMP), bytes: DUMP.length },
    "media.tar": { sha256: sha(MEDIA_TAR), bytes: MEDIA_TAR.length },
  };

  it("is the backup's manifest with the export's format, its files and the commands to restore", function () {
    const plain = plainManifest(manifest(), files);
    expect(plain).to.deep.include({
      format: PLAIN_FORMAT,
      backupManifestFormat: 2,
      id: ID,
      version: "1.0.0",
      database: manifest().database,
      tables: manifest().tables,
      objects: { schemas: 1 },
      migrations: manifest().migrations,
      files,
    });
    expect(plain).not.to.have.property("targetVersion");
    const steps = (plain.howToRestore as string[]).join("\n");
    expect(steps).to.contain("sha256sum -c SHA256SUMS");
    expect(steps).to.contain(
      "pg_restore --no-owner --no-privileges --exit-on-error --single-transaction -h HOST -U USER -d DATABASE db.dump",
    );
    expect(steps).to.contain(MEDIA_EXTRACT);
    expect(steps).to.contain("release 1.0.0");
  });

  it("copies no field it does not know: a newer manifest's key never leaves unchecked", function () {
    const newer = { ...manifest(), databaseUrl: "postgres://edms:hunter2@db/edms" } as Manifest;
    expect(JSON.stringify(plainManifest(newer, files))).not.to.contain("hunter2");
  });

  it("SHA256SUMS is what `sha256sum -c` checks, and it catches a changed file", function () {
    fs.writeFileSync(path.join(tmp, "db.dump"), DUMP);
    fs.writeFileSync(path.join(tmp, "media.tar"), MEDIA_TAR);
    const text = sha256sums({ "db.dump": sha(DUMP), "media.tar": sha(MEDIA_TAR) });
    expect(text).to.equal(`${sha(DUMP)}  db.dump\n${sha(MEDIA_TAR)}  media.tar\n`);
    fs.writeFileSync(path.join(tmp, "SHA256SUMS"), text);
    const ok = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: tmp, encoding: "utf8" });
    expect(ok.status, ok.stderr).to.equal(0);
    fs.appendFileSync(path.join(tmp, "media.tar"), "x");
    expect(spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: tmp }).status).to.equal(1);
  });
});

/** The lock container's side: what each script would print, and every script run. */
function standIn(
  parts: { manifest?: Manifest; dump?: Buffer; mediaFails?: boolean; freeKiB?: number } = {},
) {
  const scripts: string[] = [];
  const exec = async (script: string, _args: readonly string[], options: RunOptions = {}) => {
    scripts.push(script);
    const send = (data: Buffer | string, code = 0): RunResult => {
      (options.stdout as Writable | undefined)?.write(data);
      return { code, stdout: options.stdout ? "" : String(data), stderr: code ? "boom" : "" };
    };
    if (script.startsWith("df -Pk")) {
      const free = parts.freeKiB ?? 100 * 1024 * 1024;
      return send(
        `Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 209715200 1 ${free} 1% /backups\n`,
      );
    }
    if (script.includes("manifest.json")) {
      return send(JSON.stringify(parts.manifest ?? manifest()));
    }
    if (script.includes("db.dump")) {
      return send(parts.dump ?? DUMP);
    }
    if (script.includes("tar ")) {
      return send(MEDIA_TAR.subarray(0, 512), parts.mediaFails ? 1 : 0);
    }
    return send("");
  };
  const settings = { stack: "staging", names: { backupsVolume: "edms_backups" } };
  const session = { settings, exec } as unknown as OpsSession;
  return { session, scripts };
}

describe("plain export: writing the folder", function () {
  before(() => setQuiet(true));
  after(() => setQuiet(false));

  it("writes db.dump byte for byte, media.tar, manifest.json and SHA256SUMS; no partial file stays", async function () {
    const target = path.join(tmp, ID);
    const { session } = standIn();
    await exportPlain(session, entry, { target, exists: false });
    expect(fs.readdirSync(target).sort()).to.deep.equal([
      "SHA256SUMS",
      "db.dump",
      "manifest.json",
      "media.tar",
    ]);
    expect(fs.readFileSync(path.join(target, "db.dump")).equals(DUMP)).to.equal(true);
    const written = JSON.parse(fs.readFileSync(path.join(target, "manifest.json"), "utf8"));
    expect(written.files["media.tar"]).to.deep.equal({
      sha256: sha(MEDIA_TAR.subarray(0, 512)),
      bytes: 512,
    });
    const check = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: target, encoding: "utf8" });
    expect(check.status, check.stderr).to.equal(0);
    expect(check.stdout.split("\n").filter(Boolean)).to.have.length(3);
  });

  it("a db.dump whose sha256 is not the manifest's fails, and nothing is kept", async function () {
    const target = path.join(tmp, ID);
    const { session, scripts } = standIn({ dump: Buffer.from("PGDMP tampered") });
    const err = await exportPlain(session, entry, { target, exists: false }).catch((e) => e);
    expect(err).to.be.instanceOf(OpsError);
    expect((err as OpsError).exitCode).to.equal(1);
    expect((err as OpsError).message).to.match(/does not match its manifest.*Nothing was kept/);
    expect(fs.existsSync(target)).to.equal(false);
    expect(scripts.some((s) => s.includes("tar "))).to.equal(false);
  });

  it("a media stream that fails removes what was written, keeps an empty folder it found, clears scratch", async function () {
    const target = path.join(tmp, ID);
    fs.mkdirSync(target);
    const { session, scripts } = standIn({ mediaFails: true });
    const err = (await exportPlain(session, entry, { target, exists: true }).catch(
      (e) => e,
    )) as OpsError;
    expect(err.message).to.match(
      /media.tar cannot be read from the repository: boom. Nothing was kept/,
    );
    expect(fs.readdirSync(target)).to.deep.equal([]);
    expect(scripts[scripts.length - 1]).to.equal('rm -rf "$1"');
  });
});

describe("plain export: room and filesystems", function () {
  before(() => setQuiet(true));
  after(() => setQuiet(false));

  it("is refused before it writes anything when the backups volume has no room for the restored media", async function () {
    const target = path.join(tmp, ID);
    const { session, scripts } = standIn({ freeKiB: 1024 });
    const err = (await exportPlain(session, entry, { target, exists: false }).catch(
      (e) => e,
    )) as OpsError;
    expect(err).to.be.instanceOf(OpsError);
    expect(err.exitCode).to.equal(2);
    expect(err.message).to.match(
      /Not enough free space for the export of .*: it needs about .* on the filesystem of the backups volume edms_backups \(.*\), which has 1\.0 MiB free\. Nothing was copied or changed\./,
    );
    expect(fs.existsSync(target)).to.equal(false);
    expect(scripts.some((s) => s.includes("db.dump") || s.includes("tar "))).to.equal(false);
  });

  it("finishes each file by a rename where the filesystem has no hard links (FAT, exFAT), never over a file put there", async function () {
    const target = path.join(tmp, ID);
    // The module object itself (an `import *` namespace is read-only): what plainExport.ts reads through.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeFs = require("fs") as { linkSync: typeof fs.linkSync };
    const link = nodeFs.linkSync;
    const noLinks = () => {
      throw Object.assign(new Error("EPERM: operation not permitted, link"), { code: "EPERM" });
    };
    nodeFs.linkSync = noLinks;
    try {
      const writer = new PlainWriter(target);
      writer.create();
      writer.write("manifest.json", "{}\n");
      expect(fs.readdirSync(target)).to.deep.equal(["manifest.json"]);
      fs.writeFileSync(path.join(target, "SHA256SUMS"), "put there meanwhile");
      expect(() => writer.write("SHA256SUMS", "ours")).to.throw(/SHA256SUMS appeared while/);
      expect(fs.readFileSync(path.join(target, "SHA256SUMS"), "utf8")).to.equal(
        "put there meanwhile",
      );
    } finally {
      nodeFs.linkSync = link;
      fs.rmSync(target, { recursive: true, force: true });
    }
  });
});

describe("plain export: refusals before the engine", function () {
  this.timeout(120000);
  before(() => ensureCliBuilt());

  const cli = (args: string[]) => {
    fs.writeFileSync(
      path.join(tmp, "Pulumi.staging.yaml"),
      YAML.stringify({
        config: {
          "edms:environment": "staging",
          "edms:version": "1.0.0",
          "edms:namePrefix": "plain-export",
          "docker:host": "tcp://127.0.0.1:9", // nothing listens: an engine call would fail differently
        },
      }),
    );
    return spawnSync(
      "node",
      [
        path.join(REPO_ROOT, "ops/bin/edms-ops.js"),
        ...args,
        ...["--stack", "staging", "--project-dir", tmp],
      ],
      { encoding: "utf8", env: { ...process.env, EDMS_SETTINGS_JSON: "", DOCKER_HOST: "" } },
    );
  };

  it("`--to` that does not exist: exit 2 naming the flag, with no engine reachable", function () {
    const result = cli(["backups", "export", ID, "--plain", "--to", path.join(tmp, "nowhere")]);
    expect(result.status, result.stderr).to.equal(2);
    expect(result.stderr).to.match(/`--to .*nowhere`: .* is not an existing directory/);
    expect(result.stderr).not.to.match(/Cannot connect|engine/i);
  });

  it("`backups import` of a plain export: exit 2 saying what it is, not that it is corrupt", function () {
    const folder = path.join(tmp, ID);
    fs.mkdirSync(folder);
    const files = {
      "db.dump": { sha256: sha(DUMP), bytes: 1 },
      "media.tar": { sha256: sha(""), bytes: 0 },
    };
    fs.writeFileSync(
      path.join(folder, "manifest.json"),
      JSON.stringify(plainManifest(manifest(), files)),
    );
    const result = cli(["backups", "import", folder]);
    expect(result.status, result.stderr).to.equal(2);
    expect(result.stderr).to.contain(`is a plain export (${PLAIN_FORMAT})`);
    expect(result.stderr).to.contain("howToRestore");
  });
});
