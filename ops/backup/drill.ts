/**
 * A drill proves that a backup brings back a working system, which `verify` (bytes intact, dump restores,
 * counts equal) does not: the database goes into a scratch PostgreSQL and the media into a scratch volume,
 * then the backup's *own release* runs against them (`manage.py check --database default`, `migrate
 * --check`), the migration state and row counts are compared with the manifest, the media of a sample plus
 * every file changed since the previous drill are checksummed against the live file (when it is still the
 * one the backup read), and an operator's `--check CMD` runs in the same container. A JSON record of every
 * drill, passed or failed, goes to `drills/` in the backups volume.
 *
 * Live data is never touched: the scratch server and the release container sit on a network of their own
 * (`--internal`), the live media volume is mounted read-only and only for checksums. Scratch containers,
 * network and volume are removed on every exit path the process sees (success, failure, exception,
 * SIGINT/SIGTERM/SIGHUP); what a SIGKILL leaves is removed by the next drill before it starts.
 */
import { randomBytes, randomInt } from "crypto";
import * as os from "os";
import { djangoEnvironment, MEDIA_ROOT, SECRETS_DIR } from "../../model/containers";
import { Settings } from "../../model/settings";
import { BackupEntry } from "../store/restic";
import { lastLine } from "../core/log";
import { Manifest } from "../store/manifest";
import { readManifest } from "../store/catalog";
import { inventory, migrationState } from "../database/postgres";
import { docker, removeByRole, RunResult, volumeExists } from "../engine/docker";
import { failure } from "../core/errors";
import { progress } from "../core/log";
import { MEDIA_DIR } from "../store/restic";

/** The next step when a check finds the backup damaged. */
const DAMAGED =
  "Do not count on this backup: find the damage with `edms-ops verify <id>`, and repair the repository before relying on a new backup.";
import { OpsSession } from "../engine/session";
import { tarball } from "../engine/tarball";
import { backupToolbox, toolbox } from "../engine/toolbox";
import { compareMaps, inventoryProblems, restoreIntoScratch, withScratchDatabase } from "./verify";
import { LAYOUT } from "../store/layout";
import { DrillCheck, DrillRecord, DrillRecordSchema } from "../store/records";
import { parseJson, parseJsonOrNull } from "../core/json";
import { z } from "zod";

export const DRILLS_DIR = LAYOUT.drillsDir;
const SCRATCH_ROLE = "drill-scratch";
export const DEFAULT_SAMPLE = 20;

export type { DrillCheck, DrillRecord } from "../store/records";

export interface DrillOptions {
  readonly trigger: string;
  /** Shell command run in the release container against the restored data. */
  readonly check?: string;
  /** Media files checksummed besides those changed since the previous drill. */
  readonly sample?: number;
}

interface MediaFile {
  readonly path: string;
  readonly size: number;
  readonly mtime: number;
}

/** Names of what one drill creates, so every exit path removes exactly them. */
class Scratch {
  readonly tag = randomBytes(3).toString("hex");
  readonly network: string;
  readonly volume: string;
  readonly app: string;
  private cleaned = false;

  constructor(readonly settings: Settings) {
    const base = `${settings.namePrefix}-drill-${this.tag}`;
    this.network = base;
    this.volume = `${base}-media`;
    this.app = `${base}-app`;
  }

  labels(): string[] {
    return ["--label", `edms.stack=${this.settings.stack}`, "--label", `edms.role=${SCRATCH_ROLE}`];
  }

  async create(): Promise<void> {
    await docker(["network", "create", "--internal", ...this.labels(), this.network]);
    await docker(["volume", "create", ...this.labels(), this.volume]);
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) {
      return;
    }
    this.cleaned = true;
    await docker(["rm", "-f", "-v", this.app], { allowFailure: true });
    await removeByRole(this.settings.stack, "scratch-db");
    await docker(["network", "rm", this.network], { allowFailure: true });
    await docker(["volume", "rm", "-f", this.volume], { allowFailure: true });
  }
}

/** What killed drills left behind: containers first (they hold the network and the volume). */
export async function removeDrillLeftovers(settings: Settings): Promise<void> {
  const filters = ["--filter", `label=edms.stack=${settings.stack}`];
  filters.push("--filter", `label=edms.role=${SCRATCH_ROLE}`);
  await removeByRole(settings.stack, SCRATCH_ROLE);
  await removeByRole(settings.stack, "scratch-db");
  const networks = (await docker(["network", "ls", "-q", ...filters])).stdout.split("\n");
  for (const id of networks.filter(Boolean)) {
    await docker(["network", "rm", id], { allowFailure: true });
  }
  const volumes = (await docker(["volume", "ls", "-q", ...filters])).stdout.split("\n");
  for (const name of volumes.filter(Boolean)) {
    await docker(["volume", "rm", "-f", name], { allowFailure: true });
  }
}

/** Runs the steps of a drill, each one timed and recorded, the failures as well as the passes. */
class Checks {
  readonly list: DrillCheck[] = [];

  async run(name: string, step: () => Promise<string>): Promise<boolean> {
    const started = Date.now();
    progress(`drill: ${name}`);
    let ok = true;
    let detail: string;
    try {
      detail = await step();
    } catch (err) {
      ok = false;
      detail = (err as Error).message;
    }
    this.list.push({ name, ok, detail, seconds: (Date.now() - started) / 1000 });
    if (!ok) {
      progress(`drill: ${name} FAILED: ${detail.split("\n")[0]}`);
    }
    return ok;
  }

  skip(name: string, why: string): void {
    this.list.push({ name, ok: false, detail: `not run: ${why}`, seconds: 0 });
  }
}

/**
 * Runs `drill` with fresh scratch space, removed on every exit path, a signal too. Scratch space that cannot
 * be set up (the scratch server never starts, no network) fails the drill like a check, and the record
 * says so.
 */
async function inScratch(
  settings: Settings,
  checks: Checks,
  drill: (scratch: Scratch) => Promise<void>,
): Promise<void> {
  await removeDrillLeftovers(settings);
  const scratch = new Scratch(settings);
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`drill: ${signal}: removing the scratch containers, network and volume`);
    void scratch.cleanup().finally(() => process.exit(128 + (os.constants.signals[signal] ?? 1)));
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  signals.forEach((s) => process.once(s, onSignal));
  try {
    await scratch.create();
    await drill(scratch);
  } catch (err) {
    checks.list.push({
      name: "scratch space",
      ok: false,
      detail: (err as Error).message,
      seconds: 0,
    });
  } finally {
    await scratch.cleanup();
    signals.forEach((s) => process.removeListener(s, onSignal));
  }
}

export async function drillBackup(
  session: OpsSession,
  entry: BackupEntry,
  options: DrillOptions,
): Promise<DrillRecord> {
  // The backup under drill is never what a retention run in this operation forgets.
  session.pinned.add(entry.id);
  const { settings } = session;
  const startedAt = await session.hostTime();
  const clock = Date.now();
  const checks = new Checks();
  const previous = await latestDrill(session);
  let manifest: Manifest | undefined;
  await checks.run("manifest", async () => {
    manifest = await readManifest(session, entry);
    return `release ${manifest.version ?? "none"}, ${Object.keys(manifest.tables).length} tables`;
  });
  const media = {
    files: 0,
    checksums: {} as Record<string, string>,
    changed: null as number | null,
  };
  const release = manifest?.version ?? null;
  if (manifest) {
    const restoring = manifest;
    await inScratch(settings, checks, (scratch) =>
      runDrill(session, entry, restoring, scratch, checks, options, previous, media),
    );
  }
  const finishedAt = await session.hostTime();
  const record: DrillRecord = {
    format: 1,
    id: `${startedAt.replace(/:/g, "-")}-drill`,
    stack: settings.stack,
    backup: entry.id,
    snapshot: entry.snapshot,
    release,
    trigger: options.trigger,
    ranBy: `${os.userInfo().username}@${os.hostname()}`,
    startedAt,
    finishedAt,
    seconds: (Date.now() - clock) / 1000,
    ok: checks.list.every((c) => c.ok),
    checks: checks.list,
    media: {
      files: media.files,
      checksums: media.checksums,
      changedSincePreviousDrill: media.changed,
      previousDrill: previous?.id ?? null,
    },
  };
  await session.exec(`mkdir -p ${DRILLS_DIR} && cat > ${DRILLS_DIR}/"$1".json`, [record.id], {
    input: JSON.stringify(record, null, 2),
  });
  return record;
}

async function runDrill(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  scratch: Scratch,
  checks: Checks,
  options: DrillOptions,
  previous: DrillRecord | null,
  media: { files: number; checksums: Record<string, string>; changed: number | null },
): Promise<void> {
  const { settings } = session;
  const hasMedia = entry.paths.includes(MEDIA_DIR);
  // The media come back while the scratch server runs initdb: the two overlap.
  const mediaRestored = hasMedia
    ? restoreMedia(settings, entry, scratch).then(
        () => null,
        (err: Error) => err,
      )
    : Promise.resolve(null);
  await withScratchDatabase(
    settings,
    async (db) => {
      const restored = await checks.run("database restore", async () => {
        const problems = await restoreIntoScratch(session, entry, manifest, db);
        if (problems.length) {
          throw failure(problems.join("; "), DAMAGED);
        }
        return `${manifest.database.bytes} bytes, sha256 as recorded, pg_restore in one transaction`;
      });
      if (restored) {
        await databaseChecks(settings, manifest, db, checks);
      } else {
        ["row counts", "migration state"].forEach((n) =>
          checks.skip(n, "database did not restore"),
        );
      }
      const mediaOk = await checks.run("media restore", async () => {
        const failure = await mediaRestored;
        if (failure) {
          throw failure;
        }
        return hasMedia ? "restored with restic --verify" : "no media in this backup";
      });
      if (hasMedia && mediaOk) {
        await checks.run("media checksums", () =>
          checkMedia(session, entry, scratch, previous, options.sample ?? DEFAULT_SAMPLE, media),
        );
      } else if (hasMedia) {
        checks.skip("media checksums", "media did not restore");
      }
      if (!restored) {
        ["manage.py check", "migrate --check", ...(options.check ? ["--check"] : [])].forEach((n) =>
          checks.skip(n, "database did not restore"),
        );
        return;
      }
      await releaseChecks(settings, manifest, scratch, db, checks, options.check);
    },
    scratch.network,
  );
}

/** Rows, schema objects and migration state of the scratch database against the manifest. */
async function databaseChecks(
  settings: Settings,
  manifest: Manifest,
  db: string,
  checks: Checks,
): Promise<void> {
  await checks.run("row counts", async () => {
    const problems = inventoryProblems(manifest, await inventory(settings, db));
    if (problems.length) {
      throw failure(problems.join("; "), DAMAGED);
    }
    const rows = Object.values(manifest.tables).reduce((a, b) => a + b, 0);
    return `${Object.keys(manifest.tables).length} tables, ${rows} rows${manifest.objects ? " and the schema objects" : ""} as recorded`;
  });
  await checks.run("migration state", async () => {
    const problems = compareMaps("app", manifest.migrations, await migrationState(settings, db));
    if (problems.length) {
      throw failure(problems.join("; "), DAMAGED);
    }
    return `${Object.keys(manifest.migrations).length} apps at their recorded migration`;
  });
}

/** restic restore of the snapshot's media into the scratch volume, every blob verified as written. */
async function restoreMedia(settings: Settings, entry: BackupEntry, scratch: Scratch) {
  // Restored under /drill/edms/media, then moved to the volume's root, which the release sees as its
  // MEDIA_ROOT (restic < 0.17 cannot restore a subfolder to a target's root).
  const result = await backupToolbox(
    settings,
    `cd / && lrestic --no-lock restore "$1" --target /drill --include ${MEDIA_DIR} --verify >/dev/null
for f in /drill${MEDIA_DIR}/* /drill${MEDIA_DIR}/.[!.]*; do [ ! -e "$f" ] || mv "$f" /drill/; done
rm -rf /drill/edms`,
    {
      args: [entry.snapshot],
      mounts: [{ volume: scratch.volume, path: "/drill" }],
      allowFailure: true,
    },
  );
  if (result.code !== 0) {
    throw failure(
      `media cannot be restored from the repository: ${lastLine(result.stderr)}`,
      DAMAGED,
    );
  }
}

/** A file node of `restic ls --json`. */
const LsNodeSchema = z.looseObject({
  path: z.string(),
  size: z.number().optional(),
  mtime: z.string(),
});

/** Files of the snapshot's media (path relative to the media root, size, mtime in seconds). */
export function parseMediaListing(stdout: string): MediaFile[] {
  const files: MediaFile[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.includes('"type":"file"')) {
      continue;
    }
    const node = parseJson(line, LsNodeSchema, "a line of restic ls");
    if (node.path.startsWith(`${MEDIA_DIR}/`)) {
      const path = node.path.slice(MEDIA_DIR.length + 1);
      files.push({ path, size: node.size ?? 0, mtime: Math.floor(Date.parse(node.mtime) / 1000) });
    }
  }
  return files;
}

/** Paths (relative to the media root) that `restic diff` reports added or modified. */
export function parseDiff(stdout: string): string[] {
  const changed: string[] = [];
  for (const line of stdout.split("\n")) {
    const match = /^([+M])\s+(\S.*)$/.exec(line);
    if (match && match[2].startsWith(`${MEDIA_DIR}/`) && !match[2].endsWith("/")) {
      changed.push(match[2].slice(MEDIA_DIR.length + 1));
    }
  }
  return changed;
}

/** Every changed file plus `sample` others chosen at random: what a drill checksums. */
export function chooseMedia(
  files: readonly MediaFile[],
  changed: readonly string[] | null,
  sample: number,
  pick: (n: number) => number = randomInt,
): MediaFile[] {
  if (changed === null) {
    return [...files];
  }
  const wanted = new Set(changed);
  const chosen = files.filter((f) => wanted.has(f.path));
  const rest = files.filter((f) => !wanted.has(f.path));
  for (let i = 0; i < sample && rest.length; i += 1) {
    chosen.push(...rest.splice(pick(rest.length), 1));
  }
  return chosen;
}

async function checkMedia(
  session: OpsSession,
  entry: BackupEntry,
  scratch: Scratch,
  previous: DrillRecord | null,
  sample: number,
  media: { files: number; checksums: Record<string, string>; changed: number | null },
): Promise<string> {
  const { settings } = session;
  const listing = await session.exec(`lrestic ls --recursive --json "$1" ${MEDIA_DIR}`, [
    entry.snapshot,
  ]);
  const files = parseMediaListing(listing.stdout);
  media.files = files.length;
  // Changed since the previous drill: restic's own diff of the two snapshots. Without a previous drill, or
  // when its snapshot is gone, every file is new to the drills and is checked.
  let changed: string[] | null = null;
  let basis = "no previous drill: every file checked";
  if (previous && previous.snapshot !== entry.snapshot) {
    const diff = await session.exec(`lrestic diff "$1" "$2"`, [previous.snapshot, entry.snapshot], {
      allowFailure: true,
    });
    if (diff.code === 0) {
      changed = parseDiff(diff.stdout);
      basis = `${changed.length} changed since drill ${previous.id}`;
    } else {
      basis = `snapshot of drill ${previous.id} is gone: every file checked`;
    }
  } else if (previous) {
    changed = [];
    basis = `same snapshot as drill ${previous.id}`;
  }
  media.changed = changed === null ? null : changed.length;
  const chosen = chooseMedia(files, changed, sample);
  const hasLive = await volumeExists(settings.names.mediaVolume);
  // Restored bytes against the live file when the live file is still the one the backup read (same size
  // and mtime): a reference restic did not produce. Otherwise size against the snapshot's listing.
  const script = `while IFS="$(printf '\\t')" read -r p size mtime; do
  r="/drill/$p"; l="/live/$p"; rh=-; lh=-; rs=-
  if [ -f "$r" ]; then rs=$(stat -c %s "$r"); rh=$(sha256sum < "$r" | cut -d' ' -f1); fi
  if [ -f "$l" ] && [ "$(stat -c '%s %Y' "$l")" = "$size $mtime" ]; then lh=$(sha256sum < "$l" | cut -d' ' -f1); fi
  printf '%s\\t%s\\t%s\\t%s\\n' "$p" "$rs" "$rh" "$lh"
done`;
  const result = await toolbox(
    settings,
    [
      { volume: scratch.volume, path: "/drill", readOnly: true },
      ...(hasLive ? [{ volume: settings.names.mediaVolume, path: "/live", readOnly: true }] : []),
    ],
    script,
    { input: chosen.map((f) => `${f.path}\t${f.size}\t${f.mtime}\n`).join("") },
  );
  const expected = new Map(chosen.map((f) => [f.path, f]));
  const problems: string[] = [];
  let againstLive = 0;
  for (const line of result.stdout.split("\n").filter(Boolean)) {
    const [path, size, restored, live] = line.split("\t");
    const file = expected.get(path);
    if (!file) {
      continue;
    }
    expected.delete(path);
    if (restored === "-") {
      problems.push(`${path}: not restored`);
    } else if (Number(size) !== file.size) {
      problems.push(`${path}: ${size} bytes restored, the snapshot has ${file.size}`);
    } else if (live !== "-" && live !== restored) {
      problems.push(`${path}: sha256 differs from the live file the backup read`);
    } else {
      media.checksums[path] = restored;
      againstLive += live === "-" ? 0 : 1;
    }
  }
  problems.push(...[...expected.keys()].map((p) => `${p}: not checked`));
  if (problems.length) {
    throw failure(problems.slice(0, 5).join("; "), DAMAGED);
  }
  return `${chosen.length} of ${files.length} files (${basis}), ${againstLive} equal to the live file`;
}

/** The backup's own release against the restored data, in one container on the scratch network. */
async function releaseChecks(
  settings: Settings,
  manifest: Manifest,
  scratch: Scratch,
  db: string,
  checks: Checks,
  check: string | undefined,
): Promise<void> {
  // A backup taken while no web ran records no release: the configured one is the best guess left.
  const release = manifest.version ?? settings.version;
  const image = `${settings.backendImage}:${release}`;
  const names = ["manage.py check", "migrate --check", ...(check ? ["--check"] : [])];
  const started = await checks.run(`release ${release} container`, () =>
    startReleaseContainer(settings, scratch, db, image, release),
  );
  if (!started) {
    names.forEach((n) => checks.skip(n, `no container of ${image}`));
    return;
  }
  const exec = async (args: string[]): Promise<string> => {
    const result = await docker(["exec", scratch.app, ...args], { allowFailure: true });
    const tail = (result.stdout + result.stderr).trim().split("\n").slice(-3).join(" | ");
    if (result.code !== 0) {
      throw failure(
        `exit ${result.code} from \`${args.join(" ")}\`: ${tail}`,
        "Fix the release or the backup (the release's output is in the drill record), then drill again.",
      );
    }
    return tail || "exit 0";
  };
  await checks.run("manage.py check", () =>
    exec(["python3", "manage.py", "check", "--database", "default"]),
  );
  await checks.run("migrate --check", () =>
    exec(["python3", "manage.py", "migrate", "--check", "--noinput"]).then(
      () => `no unapplied migration for release ${release}`,
    ),
  );
  if (check) {
    await checks.run("--check", () => exec(["sh", "-c", check]));
  }
}

async function startReleaseContainer(
  settings: Settings,
  scratch: Scratch,
  db: string,
  image: string,
  release: string,
): Promise<string> {
  const found = await docker(["image", "inspect", image, "--format", "{{.Id}}"], {
    allowFailure: true,
  });
  if (found.code !== 0) {
    throw failure(
      `image ${image} is not on the Docker host`,
      "Load or pull it there, then drill again.",
    );
  }
  const env = djangoEnvironment({ ...settings, version: release })
    .map((e) => (e.startsWith("POSTGRES_HOST=") ? `POSTGRES_HOST=${db}` : e))
    // Nothing on the scratch network answers there: a check that needs Redis fails instead of
    // reaching the live one.
    .map((e) => (e.startsWith("REDIS_URL=") ? "REDIS_URL=redis://127.0.0.1:1/0" : e));
  const args = ["create", "--name", scratch.app, "--network", scratch.network, ...scratch.labels()];
  args.push("--log-driver", "none", "-e", "EDMS_DRILL=1");
  env.forEach((e) => args.push("-e", e));
  args.push("-v", `${scratch.volume}:${MEDIA_ROOT}`, "--entrypoint", "sleep", image, "infinity");
  await docker(args);
  // Throwaway values, not the stack's: the scratch server trusts every connection, and the key signs
  // nothing that outlives the drill.
  const archive = await tarball([
    { name: `${SECRETS_DIR.slice(1)}/postgres_password`, content: "drill", mode: 0o444 },
    {
      name: `${SECRETS_DIR.slice(1)}/django_secret_key`,
      content: randomBytes(32).toString("hex"),
      mode: 0o444,
    },
  ]);
  await docker(["cp", "-", `${scratch.app}:/`], { input: archive });
  const startedApp: RunResult = await docker(["start", scratch.app], { allowFailure: true });
  if (startedApp.code !== 0) {
    throw failure(
      `could not start ${image}: ${lastLine(startedApp.stderr)}`,
      "Check that the image runs (`docker run --rm <image> true`), then drill again.",
    );
  }
  return `${image} on the scratch network`;
}

/** The newest drill record, read under the session's lock. */
export async function latestDrill(session: OpsSession): Promise<DrillRecord | null> {
  const { stdout } = await session.exec(
    `ls ${DRILLS_DIR}/*.json 2>/dev/null | sort | tail -1 | while read -r f; do cat "$f"; done`,
  );
  return parseDrill(stdout);
}

/** The newest drill record without the lock (status, evidence). */
export async function readLatestDrill(settings: Settings): Promise<DrillRecord | null> {
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return null;
  }
  const { stdout } = await backupToolbox(
    settings,
    `ls ${DRILLS_DIR}/*.json 2>/dev/null | sort | tail -1 | while read -r f; do cat "$f"; done`,
  );
  return parseDrill(stdout);
}

/** Backup id → whether its most recent drill passed, from the newest 100 drill records (no lock). */
export async function drillResults(settings: Settings): Promise<Map<string, boolean>> {
  const results = new Map<string, boolean>();
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return results;
  }
  const { stdout } = await backupToolbox(
    settings,
    `ls ${DRILLS_DIR}/*.json 2>/dev/null | sort | tail -100 | while read -r f; do tr -d '\n' < "$f"; echo; done`,
  );
  for (const line of stdout.split("\n")) {
    const record = parseDrill(line);
    if (record) {
      results.set(record.backup, record.ok); // oldest first: the newest drill of a backup wins
    }
  }
  return results;
}

function parseDrill(text: string): DrillRecord | null {
  return parseJsonOrNull(text, DrillRecordSchema);
}
