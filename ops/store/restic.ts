/**
 * The stack's restic repositories, as seen from inside a backup container on the Docker host:
 *
 *   restic/ and .keys/ in the backups volume (layout.ts): the local repository and root-only copies of
 *                              its password and the off-host credentials, written from the Pulumi secrets
 *                              by `edms-ops backups init` (or EDMS_RESTIC_PASSWORD / EDMS_OFFSITE_*)
 *   /edms/database             in each snapshot: db.dump (pg_dump -Fc -Z0) and manifest.json
 *   /edms/media                in each snapshot: the media volume
 *
 * One backup is one snapshot, tagged `edms`, `id=<id>`, `reason=…`, `release=…`, `target=…`, `stack=…`, and
 * `imported` (brought in by `backups import`/`import-legacy`) or `bootstrap` (a database holding only what
 * the bootstrap wrote): retention reads them from a listing alone, on any host.
 * Secrets reach restic only as files (`--password-file`, `--repository-file`, an env file sourced by the
 * shell): never argv, never container env.
 */
import { OFFSITE_ENV_PREFIXES } from "../../model/config/backup";
import { shellQuote } from "../../model/shell";
import { OPS_PATHS } from "../../model/containers";
import { failure, refuse } from "../core/errors";
import { BACKUPS_DIR, KEY_FILES, LAYOUT } from "./layout";
import { z } from "zod";
import { parseJson, tryParseJson } from "../core/json";

export { BACKUPS_DIR };
export const REPOSITORY = LAYOUT.repository;
export const KEYS_DIR = LAYOUT.keysDir;
export const PASSWORD_FILE = `${KEYS_DIR}/${KEY_FILES.password}`;
export const OFFSITE_REPOSITORY_FILE = `${KEYS_DIR}/${KEY_FILES.offsiteRepository}`;
export const OFFSITE_ENV_FILE = `${KEYS_DIR}/${KEY_FILES.offsiteEnv}`;
export const STAGE_DIR = OPS_PATHS.stage;
export const MEDIA_DIR = OPS_PATHS.media;
export const DUMP_FILE = `${STAGE_DIR}/db.dump`;
export const MANIFEST_FILE = `${STAGE_DIR}/manifest.json`;
/**
 * The stage's volume with an engine: the lock container mounts it at STAGE_DIR, and so does the dump's client
 * container, which writes the dump straight into it (ops/backup/dump.ts). Emptied and removed when the
 * session ends; what a killed session left is emptied by the next one.
 */
export const stageVolume = (namePrefix: string) => `${namePrefix}_ops_stage`;
export const STAGE_ROLE = "ops-stage";
/** pg_dump's application_name: a dump orphaned by a killed edms-ops is found and ended by it. */
export const DUMP_APPLICATION = "edms-ops-dump";
/**
 * Label of helper containers an operation starts under the lock that write outside the lock container (the
 * legacy import into the repository, the dump's client into the stage): removed when that session ends, and by
 * the next session when a killed one left them.
 */
export const OPS_HELPER_ROLE = "ops-helper";

/**
 * The files the app's health probe writes at the top of media (never deeper): never part of a backup. Only
 * there: an upload such as `docs/.health-insurance.pdf` is backed up like any other file.
 */
export const MEDIA_PROBE = ".health-*";
/** restic backup's exclusion of them (absolute paths, as the backup names media). */
export const MEDIA_EXCLUDE = `${OPS_PATHS.media}/${MEDIA_PROBE}`;
/** restic restore's, of `<id>:<media>`: its paths start at the restored folder, as `/`. */
export const MEDIA_RESTORE_EXCLUDE = `/${MEDIA_PROBE}`;

/**
 * The id of the local repository's fast key (fastKey.ts) in $EKEY, read by a shell builtin (no process);
 * empty when there is none or the file holds anything but a key id. KEY_HINT has restic try that key first
 * (one cheap key derivation); without it, or should that key be gone or not open, restic tries every key.
 */
export const KEY_HINT_READ = `EKEY=; [ ! -f ${LAYOUT.keyHint} ] || read -r EKEY < ${LAYOUT.keyHint} || true; case "$EKEY" in *[!0-9a-f]*) EKEY= ;; esac`;
export const KEY_HINT = `\${EKEY:+--key-hint "$EKEY"}`;
/** The same key, for a command whose *source* is the local repository (`copy --from-repo`). */
export const FROM_KEY_HINT = `\${EKEY:+--from-key-hint "$EKEY"}`;

/**
 * Shell functions every backup script starts with: `lrestic` for the local repository, `orestic` for the
 * off-host one (its credentials sourced in a subshell, so they live only in that restic's environment),
 * and `frestic` = restic with the off-host repository as the *source* of a copy/init. Off-host calls are
 * bounded by `timeout` (OTIMEOUT seconds): restic would retry an unreachable backend for many minutes.
 */
/**
 * `forget` the snapshots named after it, then prune the data only they used, in one restic process (one
 * key derivation, one index load). `--max-unused 10%` keeps prune from repacking on every run: space comes
 * back in steps, time stays small.
 */
export const FORGET_AND_PRUNE = "forget --prune --max-unused 10%";

export const RESTIC_PRELUDE = [
  KEY_HINT_READ,
  `lrestic() { restic --no-cache -r ${REPOSITORY} --password-file ${PASSWORD_FILE} ${KEY_HINT} "$@"; }`,
  `orestic() { ( set -a; [ ! -f ${OFFSITE_ENV_FILE} ] || . ${OFFSITE_ENV_FILE}; set +a; exec timeout "\${OTIMEOUT:-60}" restic --cache-dir ${LAYOUT.offsiteCache} --repository-file ${OFFSITE_REPOSITORY_FILE} --password-file ${PASSWORD_FILE} "$@" ); }`,
  `frestic() { ( set -a; [ ! -f ${OFFSITE_ENV_FILE} ] || . ${OFFSITE_ENV_FILE}; set +a; exec timeout "\${OTIMEOUT:-3600}" restic --no-cache -r ${REPOSITORY} --password-file ${PASSWORD_FILE} ${KEY_HINT} --from-repository-file ${OFFSITE_REPOSITORY_FILE} --from-password-file ${PASSWORD_FILE} "$@" ); }`,
].join("\n");

/**
 * One snapshot of `restic snapshots --json`. restic omits an empty hostname and may print `paths: null`; a
 * snapshot that still does not fit is skipped on its own (it cannot be one of ours), never the whole list.
 */
const ResticSnapshotSchema = z.looseObject({
  id: z.string(),
  short_id: z.string().optional(),
  time: z.string(),
  hostname: z
    .string()
    .nullish()
    .transform((host) => host ?? ""),
  paths: z
    .array(z.string())
    .nullish()
    .transform((paths) => paths ?? []),
  tags: z
    .array(z.string())
    .nullish()
    .transform((tags) => tags ?? undefined),
});
const ResticSnapshotsSchema = z.array(z.unknown()).nullable();

/** A snapshot as `restic snapshots --json` prints it. */
export interface ResticSnapshot {
  readonly id: string;
  readonly short_id?: string;
  readonly time: string;
  readonly hostname: string;
  readonly paths: string[];
  readonly tags?: string[];
}

/** One backup in a repository, from its snapshot's tags (listing never opens the snapshot). */
export interface BackupEntry {
  readonly id: string;
  readonly snapshot: string;
  /** Snapshot time, taken by the Docker host's clock. */
  readonly time: string;
  readonly reason: string;
  /** Release running when it was taken (null: none). */
  readonly release: string | null;
  /** For pre-deploy backups: the release about to be deployed. */
  readonly target?: string;
  readonly stack: string;
  /** What the snapshot holds: /edms/database, and /edms/media unless the volume was missing. */
  readonly paths: string[];
  /** Brought in by `backups import`/`import-legacy` (tag `imported`): kept until `backups forget`. */
  readonly imported?: true;
  /** A database holding only what the bootstrap wrote (tag `bootstrap`, ops/store/bootstrap.ts). */
  readonly bootstrap?: true;
}

/** Tags without a value that mark a backup for retention. */
const FLAG_TAGS = ["imported", "bootstrap"] as const;

export function backupTags(entry: Omit<BackupEntry, "snapshot" | "time" | "paths">): string {
  return [
    "edms",
    `id=${entry.id}`,
    `reason=${entry.reason}`,
    `release=${entry.release ?? "none"}`,
    ...(entry.target ? [`target=${entry.target}`] : []),
    `stack=${entry.stack}`,
    ...FLAG_TAGS.filter((flag) => entry[flag]),
  ].join(",");
}

/** Snapshots of edms backups, oldest first; snapshots without our tags are not backups of ours. */
export function parseSnapshots(json: string): BackupEntry[] {
  const parsed = tryParseJson(json.trim() || "[]", ResticSnapshotsSchema);
  const snapshots: ResticSnapshot[] = (parsed.ok ? (parsed.value ?? []) : []).flatMap((raw) => {
    const one = ResticSnapshotSchema.safeParse(raw);
    return one.success ? [one.data] : [];
  });
  if (!parsed.ok) {
    throw failure(
      "restic printed an unreadable snapshot list;",
      "run `edms-ops verify <id>` to check the repository.",
    );
  }
  const entries: BackupEntry[] = [];
  for (const snap of snapshots) {
    const tags = new Map<string, string>();
    for (const tag of snap.tags ?? []) {
      const at = tag.indexOf("=");
      tags.set(at < 0 ? tag : tag.slice(0, at), at < 0 ? "" : tag.slice(at + 1));
    }
    const id = tags.get("id");
    if (!tags.has("edms") || !id) {
      continue;
    }
    const release = tags.get("release");
    entries.push({
      id,
      snapshot: snap.id,
      time: snap.time,
      reason: tags.get("reason") ?? "unknown",
      release: release && release !== "none" ? release : null,
      ...(tags.get("target") ? { target: tags.get("target") } : {}),
      stack: tags.get("stack") ?? snap.hostname,
      paths: snap.paths ?? [],
      ...Object.fromEntries(FLAG_TAGS.filter((flag) => tags.has(flag)).map((f) => [f, true])),
    });
  }
  return entries.sort(
    (a, b) => Date.parse(a.time) - Date.parse(b.time) || a.id.localeCompare(b.id),
  );
}

/** The summary line of `restic backup --json`. */
const BackupSummarySchema = z.looseObject({
  snapshot_id: z.string(),
  files_new: z.number(),
  files_changed: z.number(),
  files_unmodified: z.number(),
  data_added: z.number(),
  total_files_processed: z.number(),
  total_bytes_processed: z.number(),
});
export type BackupSummary = z.output<typeof BackupSummarySchema>;

export function parseBackupSummary(stdout: string): BackupSummary {
  for (const line of stdout.split("\n").reverse()) {
    if (line.includes('"message_type":"summary"')) {
      return parseJson(line, BackupSummarySchema, "restic's backup summary");
    }
  }
  throw failure(
    "restic backup printed no summary; the snapshot was not confirmed.",
    "Retry the backup; `edms-ops backups list` shows whether a snapshot was written.",
  );
}

/** An error line of `restic backup --json` (stderr): restic < 0.17 marshals Go's error, later ones a message. */
const ResticErrorSchema = z.looseObject({
  message_type: z.literal("error"),
  error: z.unknown(),
  item: z.string().optional(),
});

const ERRNO: Record<number, string> = {
  1: "operation not permitted",
  2: "vanished while the backup ran",
  5: "input/output error",
  13: "permission denied",
  36: "path too long",
  40: "too many levels of symbolic links",
};

/** A path for a message: very long ones (they exist: that is one way to be unreadable) cut in the middle. */
function shortPath(path: string): string {
  return path.length > 160 ? `${path.slice(0, 100)}…${path.slice(-50)}` : path;
}

/**
 * What restic could not read during a backup (exit code 3): one `path: reason` per item, from its JSON
 * error lines; lines it printed otherwise are kept as they are (minus the closing warning).
 */
export function unreadableItems(stderr: string): string[] {
  const items: string[] = [];
  for (const line of stderr.split("\n").filter((l) => l.trim())) {
    const parsed = tryParseJson(line, ResticErrorSchema);
    if (!parsed.ok) {
      if (!/at least one source file could not be read/.test(line)) {
        items.push(line.trim());
      }
      continue;
    }
    const error = (parsed.value.error ?? {}) as {
      Op?: unknown;
      Path?: unknown;
      Err?: unknown;
      message?: unknown;
    };
    const path = parsed.value.item ?? (typeof error.Path === "string" ? error.Path : "?");
    // restic >= 0.17 repeats the (possibly very long) path inside its message: named once, in front.
    const reason =
      typeof error.message === "string"
        ? error.message.split(path).join("").replace(/ +:/g, ":")
        : `${typeof error.Op === "string" ? `${error.Op}: ` : ""}${typeof error.Err === "number" ? (ERRNO[error.Err] ?? `errno ${error.Err}`) : "unreadable"}`;
    const item = `${shortPath(path)}: ${reason}`;
    if (!items.includes(item)) {
      items.push(item); // restic reports an item once while scanning and again while archiving
    }
  }
  return items;
}

/** `restic version` → [major, minor]; restore can write only changed files from 0.17 on. */
export function resticVersion(output: string): [number, number] {
  const match = /restic (\d+)\.(\d+)/.exec(output);
  return match ? [Number(match[1]), Number(match[2])] : [0, 0];
}

/** A line for the shell to `.`: `NAME='value'`. Names are checked by the config schema. */
export function envFileLine(name: string, value: string): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) {
    throw refuse(
      `\`${name}\` is not an environment variable name (edms:backup.offsite.env).`,
      "Rename it in `edms:backup.offsite.env` (letters, digits, underscores).",
    );
  }
  if (!OFFSITE_ENV_PREFIXES.some((prefix) => name.startsWith(prefix))) {
    throw refuse(
      `\`${name}\` is not a restic backend variable (edms:backup.offsite.env takes ${OFFSITE_ENV_PREFIXES.map((p) => `${p}*`).join(", ")}). Nothing was changed.`,
      "Remove it from `edms:backup.offsite.env`.",
    );
  }
  return `${name}=${shellQuote(value)}`;
}

/** restic's words for a full disk, and for a repository that is not there. */
export const NO_SPACE = /no space left on device|ENOSPC|disk quota exceeded/i;
export const NO_REPOSITORY =
  /Is there a repository at the following location|repository does not exist|unable to open config file|config: no such file/i;
export const WRONG_PASSWORD = /wrong password or no key found/i;
