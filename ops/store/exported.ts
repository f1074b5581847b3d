/**
 * A folder brought to `edms-ops backups import` is untrusted input on the operator's machine, the one with
 * the Pulumi token and the key to the Docker host. Before anything of it is read by a tool, its layout is
 * checked with lstat (no symlinks, no device files, no entry outside the two layouts edms-ops writes), and
 * its files travel as a tar made here, in-process, with names this module chose: no local name is ever an
 * argument of a command.
 */
import * as fs from "fs";
import * as path from "path";
import { PassThrough, Readable } from "stream";
import * as tar from "tar-stream";
import { failure, refuse } from "../core/errors";
import { LEGACY_FILES } from "./legacy";

/** Marks an exported folder as ours: a restic repository holding exactly one edms backup, named here. */
export const EXPORT_MARKER = "edms-backup.json";
/** The first release's backup folder: these three files and nothing else. */
export const LEGACY_LAYOUT = ["manifest.json", ...LEGACY_FILES] as const;

const HEX64 = /^[0-9a-f]{64}$/;
const HEX2 = /^[0-9a-f]{2}$/;
/** restic's repository layout (format 2): top-level entries, and what each folder may hold. */
const REPOSITORY_DIRS = ["keys", "index", "snapshots", "locks"] as const;

export interface ExportFolder {
  readonly kind: "restic" | "legacy";
  /** Paths relative to the folder, `/`-separated, every one a regular file checked with lstat. */
  readonly files: readonly string[];
}

const notOurs = (dir: string, why: string) =>
  refuse(
    `${dir} is not a folder \`edms-ops backups export\` wrote (${why}). Nothing was imported and nothing in it was run.`,
    "Pass the folder `edms-ops backups export <id> --to DIR` wrote (DIR/<id>), as it was written.",
  );

function entries(dir: string, rel: string): string[] {
  return fs.readdirSync(path.join(dir, rel)).sort();
}

/** The kind of `rel`, without following a link. */
function kindOf(dir: string, rel: string): "file" | "dir" | "other" {
  const stat = fs.lstatSync(path.join(dir, rel));
  return stat.isFile() ? "file" : stat.isDirectory() ? "dir" : "other";
}

function requireFile(dir: string, rel: string): void {
  if (kindOf(dir, rel) !== "file") {
    throw notOurs(dir, `${rel} is not a regular file`);
  }
}

function requireDir(dir: string, rel: string): void {
  if (kindOf(dir, rel) !== "dir") {
    throw notOurs(dir, `${rel} is not a folder`);
  }
}

/** Files of one repository folder: hex names only; `data/` one level of two-hex folders deeper. */
function repositoryFiles(dir: string, folder: string): string[] {
  requireDir(dir, folder);
  return entries(dir, folder).flatMap((name) => {
    const rel = `${folder}/${name}`;
    if (folder === "data") {
      if (!HEX2.test(name)) {
        throw notOurs(dir, `unexpected entry ${rel}`);
      }
      return repositoryFiles(dir, rel);
    }
    if (!HEX64.test(name)) {
      throw notOurs(dir, `unexpected entry ${rel}`);
    }
    requireFile(dir, rel);
    return [rel];
  });
}

/** Checks the folder's layout (lstat only: nothing is followed or opened) and lists what to send. */
export function inspectExportFolder(dir: string): ExportFolder {
  if (!fs.existsSync(dir) || kindOf(dir, ".") !== "dir") {
    throw notOurs(dir, "no such folder");
  }
  const top = entries(dir, ".");
  if (top.includes(EXPORT_MARKER)) {
    const allowed = new Set<string>([EXPORT_MARKER, "config", "data", ...REPOSITORY_DIRS]);
    const stray = top.filter((name) => !allowed.has(name));
    if (stray.length) {
      throw notOurs(dir, `unexpected entries: ${stray.slice(0, 3).join(", ")}`);
    }
    requireFile(dir, EXPORT_MARKER);
    requireFile(dir, "config");
    const files = [
      "config",
      ...["data", ...REPOSITORY_DIRS]
        .filter((folder) => top.includes(folder))
        .flatMap((folder) => repositoryFiles(dir, folder)),
    ];
    return { kind: "restic", files };
  }
  if (top.includes("manifest.json")) {
    const expected = [...LEGACY_LAYOUT].sort();
    if (top.join("\n") !== expected.join("\n")) {
      throw notOurs(dir, `a first-release backup holds exactly ${expected.join(", ")}`);
    }
    LEGACY_LAYOUT.forEach((name) => requireFile(dir, name));
    return { kind: "legacy", files: [...LEGACY_LAYOUT] };
  }
  throw notOurs(dir, `neither ${EXPORT_MARKER} nor manifest.json`);
}

/**
 * A tar stream of the listed files, made in-process: fixed modes, no owners, names as listed (already
 * checked). A file that changed into something else since it was inspected fails the stream.
 */
export function packFolder(
  dir: string,
  files: readonly string[],
): { stream: Readable; failed: () => Error | undefined } {
  const pack = tar.pack();
  const stream = new PassThrough();
  let failed: Error | undefined;
  // Forwarded by hand rather than piped: a failed pack must end the stream (a cut archive makes the
  // receiving tar fail), not destroy it under the command reading it.
  pack.on("data", (chunk: unknown) => {
    if (!stream.write(chunk as Buffer)) {
      pack.pause();
    }
  });
  stream.on("drain", () => pack.resume());
  pack.on("end", () => stream.end());
  void (async () => {
    for (const rel of files) {
      const full = path.join(dir, rel);
      // No link, and no waiting on a FIFO swapped in since the inspection: a regular file or an error.
      const flags = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
      const fd = fs.openSync(full, flags);
      try {
        const stat = fs.fstatSync(fd);
        if (!stat.isFile()) {
          throw failure(
            `${rel} is no longer a regular file (it changed after the folder was checked)`,
            "Import the folder again once nothing else writes to it.",
          );
        }
        const { size } = stat;
        await new Promise<void>((resolve, reject) => {
          const entry = pack.entry({ name: rel, size, mode: 0o600, type: "file" }, (err) =>
            err ? reject(err) : resolve(),
          );
          fs.createReadStream("", { fd, autoClose: false }).on("error", reject).pipe(entry);
        });
      } finally {
        fs.closeSync(fd);
      }
    }
    pack.finalize();
  })().catch((err: Error) => {
    // A cut archive makes the receiving tar fail; the caller reports this cause.
    failed = err;
    pack.pause();
    stream.end();
  });
  return { stream, failed: () => failed };
}
