import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as tar from "tar-stream";
import { OpsError } from "../../../ops/core/errors";
import { EXPORT_MARKER, inspectExportFolder, packFolder } from "../../../ops/store/exported";

const hex = (c: string) => c.repeat(64);

/** A folder laid out as `backups export` writes it: a restic repository plus the marker. */
function exportedFolder(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-export-"));
  const write = (rel: string, content = "x") => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  };
  write(EXPORT_MARKER, JSON.stringify({ format: "restic", id: "2026-11-25T14-00-00Z-manual" }));
  write("config", "repository config");
  write(`keys/${hex("a")}`);
  write(`index/${hex("b")}`);
  write(`snapshots/${hex("c")}`);
  write(`data/ab/${hex("d")}`, "pack");
  fs.mkdirSync(path.join(dir, "locks"));
  return dir;
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(OpsError);
    expect((err as OpsError).exitCode).to.equal(2);
    return (err as Error).message;
  }
  throw new Error("expected a refusal");
}

async function unpack(stream: NodeJS.ReadableStream): Promise<Record<string, string>> {
  const extract = tar.extract();
  const files: Record<string, string> = {};
  extract.on("entry", (header, body, next) => {
    const chunks: Buffer[] = [];
    body.on("data", (c: unknown) => chunks.push(c as Buffer));
    body.on("end", () => {
      files[header.name] = Buffer.concat(chunks).toString();
      expect(header.mode).to.equal(0o600);
      next();
    });
  });
  const done = new Promise((resolve, reject) => {
    extract.on("finish", () => resolve(undefined));
    extract.on("error", reject);
  });
  stream.pipe(extract);
  await done;
  return files;
}

describe("an export folder brought to `backups import`", () => {
  it("is accepted in the layout export writes, and packed in-process with the names it checked", async () => {
    const dir = exportedFolder();
    const folder = inspectExportFolder(dir);
    expect(folder.kind).to.equal("restic");
    expect(folder.files).to.include.members(["config", `data/ab/${hex("d")}`, `keys/${hex("a")}`]);
    expect(folder.files).not.to.include(EXPORT_MARKER);
    const files = await unpack(packFolder(dir, folder.files).stream);
    expect(files[`data/ab/${hex("d")}`]).to.equal("pack");
    expect(Object.keys(files).sort()).to.deep.equal([...folder.files].sort());
  });

  it("refuses files named like options, and never runs what they name", () => {
    const dir = exportedFolder();
    const witness = `ran-${path.basename(dir)}`;
    fs.writeFileSync(path.join(dir, "--checkpoint=1"), "");
    fs.writeFileSync(path.join(dir, `--checkpoint-action=exec=touch ${witness}`), "");
    expect(refusal(() => inspectExportFolder(dir))).to.match(/unexpected entries: --checkpoint/);
    for (const where of [dir, process.cwd(), os.tmpdir()]) {
      expect(fs.existsSync(path.join(where, witness)), where).to.equal(false);
    }
  });

  it("refuses a symlink anywhere, even with a name the layout allows", () => {
    const dir = exportedFolder();
    fs.symlinkSync("/etc/passwd", path.join(dir, "snapshots", hex("e")));
    expect(refusal(() => inspectExportFolder(dir))).to.match(/is not a regular file/);
    const linkedDir = exportedFolder();
    fs.rmSync(path.join(linkedDir, "data"), { recursive: true });
    fs.symlinkSync("/etc", path.join(linkedDir, "data"));
    expect(refusal(() => inspectExportFolder(linkedDir))).to.match(/data is not a folder/);
  });

  it("refuses odd names inside the repository folders, a fifo, and a folder of neither kind", () => {
    const dir = exportedFolder();
    fs.writeFileSync(path.join(dir, "index", "notes.txt"), "");
    expect(refusal(() => inspectExportFolder(dir))).to.match(/unexpected entry index\/notes\.txt/);
    const fifo = exportedFolder();
    execFileSync("mkfifo", [path.join(fifo, "keys", hex("f"))]);
    expect(refusal(() => inspectExportFolder(fifo))).to.match(/is not a regular file/);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "edms-export-"));
    expect(refusal(() => inspectExportFolder(empty))).to.match(/neither/);
    expect(refusal(() => inspectExportFolder(path.join(empty, "missing")))).to.match(/no such/);
  });

  it("takes a first-release folder only as its three files", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-legacy-"));
    for (const name of ["manifest.json", "db.dump", "media.tar"]) {
      fs.writeFileSync(path.join(dir, name), name);
    }
    expect(inspectExportFolder(dir)).to.deep.equal({
      kind: "legacy",
      files: ["manifest.json", "db.dump", "media.tar"],
    });
    fs.writeFileSync(path.join(dir, "-rf"), "");
    expect(refusal(() => inspectExportFolder(dir))).to.match(
      /exactly db\.dump, manifest\.json, media\.tar/,
    );
  });

  it("fails the stream, without waiting, when a checked file became a FIFO before it was read", async () => {
    const dir = exportedFolder();
    const folder = inspectExportFolder(dir);
    fs.rmSync(path.join(dir, "config"));
    execFileSync("mkfifo", [path.join(dir, "config")]);
    const packed = packFolder(dir, folder.files);
    await new Promise((resolve) => packed.stream.on("end", resolve).resume());
    expect(packed.failed()?.message).to.match(/config is no longer a regular file/);
  });

  it("fails the stream when a checked file became a symlink before it was read", async () => {
    const dir = exportedFolder();
    const folder = inspectExportFolder(dir);
    fs.rmSync(path.join(dir, "config"));
    fs.symlinkSync("/etc/hostname", path.join(dir, "config"));
    const packed = packFolder(dir, folder.files);
    await new Promise((resolve) => packed.stream.on("end", resolve).resume());
    expect(packed.failed()?.message).to.match(/ELOOP|symbolic link/i);
  });
});
