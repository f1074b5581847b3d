/**
 * `backups export <id> --plain`: one backup as files any PostgreSQL/Django operator can use without edms-ops
 * or restic (layout in plainFormat.ts). Both large files stream from the lock container straight into their
 * final folder, hashed on the way: no second copy on this machine's disk.
 *
 * Local files are written by this process (fs), never named to a tool: a name in DIR cannot be read as an
 * option. Each file is written under a hidden partial name and linked to its name when complete; on any
 * failure everything written is removed.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Readable, Transform } from "stream";
import { failure, OpsError, refuse } from "../core/errors";
import { formatBytes, lastLine, progress } from "../core/log";
import { pipeCommands, RunResult } from "../engine/docker";
import type { OpsSession } from "../engine/session";
import { readManifest } from "../store/catalog";
import { SCRATCH } from "../store/layout";
import { Manifest } from "../store/manifest";
import { BackupEntry, DUMP_FILE, MEDIA_DIR } from "../store/restic";
import { FileSum, partialName, PlainFileName, plainManifest, sha256sums } from "./plainFormat";
import { requireBackupsRoom, snapshotMediaBytes } from "./space";

/** What the stream into one local file gave: the producer's and the writer's results, the sum. */
interface Streamed {
  readonly produced: RunResult;
  readonly written: RunResult;
  readonly sum: FileSum;
}

/** A pipeCommands consumer that writes its input to a new file (never an existing one), hashing it. */
function fileWriter(file: string, sum: { sha256: string; bytes: number }) {
  return (input: Readable): Promise<RunResult> =>
    new Promise((resolve) => {
      const hash = createHash("sha256");
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          sum.bytes += chunk.length;
          done(null, chunk);
        },
      });
      // `wx`: fails if the file exists. On an error the input is unpiped, not destroyed: pipeCommands
      // then ends the producer and drains what is in flight.
      const out = fs.createWriteStream(file, { flags: "wx", mode: 0o600 });
      let error: Error | undefined;
      out.on("error", (err) => {
        error = err;
        input.unpipe(counter);
      });
      out.on("close", () => {
        if (error) {
          resolve({ code: 1, stdout: "", stderr: `${file}: ${error.message}` });
          return;
        }
        sum.sha256 = hash.digest("hex");
        syncFile(file); // on disk before it counts as exported
        resolve({ code: 0, stdout: "", stderr: "" });
      });
      input.pipe(counter).pipe(out);
    });
}

function syncFile(file: string): void {
  const fd = fs.openSync(file, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs `script` in the lock container with its stdout written to `file`. */
async function streamToFile(
  session: OpsSession,
  script: string,
  args: readonly string[],
  file: string,
): Promise<Streamed> {
  const sum = { sha256: "", bytes: 0 };
  const [produced, written] = await pipeCommands(
    (stdout, signal) => session.exec(script, args, { stdout, allowFailure: true, signal }),
    fileWriter(file, sum),
  );
  return { produced, written, sum };
}

/** What link(2) says on a filesystem that has no hard links. */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** One export in progress: the folder, what was written into it, how to undo it. */
export class PlainWriter {
  private readonly written: string[] = [];
  private created = false;

  constructor(readonly target: string) {}

  /** Makes the folder; only a folder made here is removed on a failure (one made meanwhile by another is not). */
  create(): void {
    // Owner only: the dump holds every row of production (password hashes, personal data).
    fs.mkdirSync(this.target, { mode: 0o700 });
    this.created = true;
  }

  partial(name: PlainFileName): string {
    const file = path.join(this.target, partialName(name));
    this.written.push(file);
    return file;
  }

  /**
   * The partial file becomes `name`: link, then unlink, as a rename would overwrite a file put there meanwhile.
   * A filesystem without hard links (FAT, exFAT, some network mounts: the USB disk of a handover) gets a rename
   * once `name` is seen absent.
   */
  finish(name: PlainFileName): void {
    const final = path.join(this.target, name);
    const partial = path.join(this.target, partialName(name));
    try {
      fs.linkSync(partial, final);
    } catch (err) {
      if (!NO_HARD_LINKS.has((err as NodeJS.ErrnoException).code ?? "")) {
        throw err;
      }
      if (fs.existsSync(final)) {
        throw refuse(
          `${final} appeared while the export wrote it; it was left as it is.`,
          "Check what wrote it; remove it, or pass another `--to`, then retry.",
        );
      }
      fs.renameSync(partial, final);
      this.written.push(final);
      return;
    }
    this.written.push(final);
    fs.unlinkSync(partial);
  }

  write(name: PlainFileName, text: string): string {
    const file = this.partial(name);
    fs.writeFileSync(file, text, { flag: "wx", mode: 0o600 });
    syncFile(file);
    this.finish(name);
    return createHash("sha256").update(text).digest("hex");
  }

  /** Removes everything this export wrote, and the folder if it made it (an empty one it found stays). */
  discard(): void {
    if (this.created) {
      fs.rmSync(this.target, { recursive: true, force: true });
    } else {
      this.written.forEach((file) => fs.rmSync(file, { force: true }));
    }
  }
}

/**
 * Writes the plain export of `entry` into `target` (absent or empty, checked by plainTarget); the sums of
 * its two data files. Everything written is removed again when anything fails.
 */
export async function exportPlain(
  session: OpsSession,
  entry: BackupEntry,
  target: { target: string; exists: boolean },
): Promise<{ "db.dump": FileSum; "media.tar": FileSum }> {
  const manifest = await readManifest(session, entry);
  await requireBackupsRoom(
    session,
    await snapshotMediaBytes(session, entry),
    "the backup's media, restored to be tarred",
    `the export of ${entry.id}`,
  );
  const writer = new PlainWriter(target.target);
  try {
    if (!target.exists) {
      writer.create();
    }
    const files = {
      "db.dump": await exportDump(session, entry, manifest, writer),
      "media.tar": await exportMedia(session, entry, writer),
    };
    const manifestText = `${JSON.stringify(plainManifest(manifest, files), null, 2)}\n`;
    const manifestSum = writer.write("manifest.json", manifestText);
    writer.write(
      "SHA256SUMS",
      sha256sums({
        "db.dump": files["db.dump"].sha256,
        "media.tar": files["media.tar"].sha256,
        "manifest.json": manifestSum,
      }),
    );
    return files;
  } catch (err) {
    writer.discard();
    // Ours say what happened and that nothing was kept; anything else (a full disk, a docker error) is
    // said here.
    throw err instanceof OpsError
      ? err
      : failure(
          `Export of ${entry.id} failed: ${(err as Error).message}. Nothing was kept in ${target.target}.`,
          `Fix the cause shown, then run \`edms-ops backups export ${entry.id} --plain\` again.`,
        );
  }
}

/** db.dump, byte for byte the snapshot's, checked against the manifest's sum before it counts. */
async function exportDump(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  writer: PlainWriter,
): Promise<FileSum> {
  progress(`writing db.dump (${formatBytes(manifest.database.bytes)})`);
  const { produced, written, sum } = await streamToFile(
    session,
    `lrestic dump "$1" ${DUMP_FILE}`,
    [entry.snapshot],
    writer.partial("db.dump"),
  );
  failedStream("db.dump", session, entry.id, writer.target, { produced, written });
  if (sum.sha256 !== manifest.database.sha256 || sum.bytes !== manifest.database.bytes) {
    throw failure(
      `db.dump of ${entry.id} does not match its manifest (sha256 ${sum.sha256.slice(0, 12)}…, ${sum.bytes} bytes; recorded ${manifest.database.sha256.slice(0, 12)}…, ${manifest.database.bytes} bytes). Nothing was kept in ${writer.target}.`,
      `Check the repository with \`edms-ops verify ${entry.id} --stack ${session.settings.stack}\`, or export another backup.`,
    );
  }
  writer.finish("db.dump");
  return sum;
}

/**
 * media.tar: the snapshot's media restored into a scratch folder of the backups volume, then tarred from
 * the media root. `restic dump <snapshot> /edms/media` streams a tar too, but restic before 0.16 (0.14 is the
 * oldest supported) names every entry `edms/media/…` and has no `<snapshot>:<subfolder>` form to drop it.
 * GNU tar (Debian images) writes POSIX pax; busybox tar (restic/restic) writes ustar.
 */
async function exportMedia(
  session: OpsSession,
  entry: BackupEntry,
  writer: PlainWriter,
): Promise<FileSum> {
  progress("writing media.tar");
  const scratch = SCRATCH.export(process.pid);
  const script = `rm -rf "$1" && mkdir -p "$1"
if [ "$3" = yes ]; then cd / && lrestic restore "$2" --target "$1" --include ${MEDIA_DIR} --verify >/dev/null; fi
mkdir -p "$1${MEDIA_DIR}" && cd "$1${MEDIA_DIR}"
format=; if tar --version 2>/dev/null | grep -q 'GNU tar'; then format=--format=posix; fi
tar $format -cf - .`;
  const hasMedia = entry.paths.includes(MEDIA_DIR) ? "yes" : "no";
  try {
    const { produced, written, sum } = await streamToFile(
      session,
      script,
      [scratch, entry.snapshot, hasMedia],
      writer.partial("media.tar"),
    );
    failedStream("media.tar", session, entry.id, writer.target, { produced, written });
    writer.finish("media.tar");
    progress(`media.tar: ${formatBytes(sum.bytes)}`);
    return sum;
  } finally {
    await session.exec(`rm -rf "$1"`, [scratch], { allowFailure: true });
  }
}

/** The failure of one file's stream, if either end failed: the local write first, as it ends the producer. */
function failedStream(
  name: PlainFileName,
  session: OpsSession,
  id: string,
  target: string,
  { produced, written }: { produced: RunResult; written: RunResult },
): void {
  const kept = `Nothing was kept in ${target}.`;
  if (written.code !== 0) {
    throw failure(
      `Writing ${name} failed: ${lastLine(written.stderr)}. ${kept}`,
      `Free space or fix the folder's permissions, then run \`edms-ops backups export ${id} --plain\` again.`,
    );
  }
  if (produced.code !== 0) {
    throw failure(
      `${name} cannot be read from the repository: ${lastLine(produced.stderr)}. ${kept}`,
      `Check it with \`edms-ops verify ${id} --stack ${session.settings.stack}\`, or free space on the Docker host, then retry.`,
    );
  }
}
