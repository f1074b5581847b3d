/**
 * Free space, checked before a restore or a drill copies a backup somewhere, so a full disk refuses it up front
 * instead of stopping the live PostgreSQL that shares the filesystem (ENOSPC). What a backup needs:
 *
 * - database: the dump (`pg_dump -Fc -Z0`) holds rows but only the definitions of indexes, so the restored
 *   database takes about the dump again for heap and indexes (2× the dump), and pg_restore writes as much WAL,
 *   recycled at checkpoints once it reaches `max_wal_size`; plus 64 MiB of catalog and slack.
 * - media: the snapshot's media files, less what the volume already holds (a restore deletes and overwrites in
 *   place); all of them for a drill's empty scratch volume.
 *
 * Two places on one filesystem (volumes on the same Docker data root) add up.
 */
import { listingCount, snapshotMedia } from "./mediaCount";
import { PGDATA } from "../../model/containers";
import { Manifest } from "../store/manifest";
import { Settings } from "../../model/settings";
import { BackupEntry, MEDIA_DIR, STAGE_DIR, stageVolume } from "../store/restic";
import { BACKUPS_DIR } from "../store/layout";
import { OpsSession } from "../engine/session";
import { docker } from "../engine/docker";
import { toolbox } from "../engine/toolbox";
import { psql } from "../database/postgres";
import { refuse } from "../core/errors";
import { formatBytes } from "../core/log";
import { parseJsonOrNull } from "../core/json";
import { z } from "zod";

const SLACK = 64 * 1024 * 1024;
/** PostgreSQL's default `max_wal_size` (a scratch server's). */
export const DEFAULT_MAX_WAL = 1024 * 1024 * 1024;

/** Bytes the database of a dump of `dumpBytes` takes while it is restored, WAL included. */
export function databaseRoomNeeded(dumpBytes: number, maxWalBytes: number): number {
  const restored = dumpBytes * 2;
  return Math.ceil(restored + Math.min(restored, maxWalBytes)) + SLACK;
}

/** Bytes the media of a snapshot take beyond what the volume already holds. */
export function mediaRoomNeeded(snapshotBytes: number, currentBytes: number): number {
  return Math.max(0, snapshotBytes - currentBytes) + (snapshotBytes > 0 ? SLACK : 0);
}

/** One place something is written to: its filesystem (from `df -Pk`) and what goes there. */
export interface Place {
  /** What the operator recognises: "the postgres volume x". */
  readonly name: string;
  /** What goes there: "the database restored beside the live one". */
  readonly what: string;
  /** `df -Pk` output for a path in it. */
  readonly df: string;
  readonly needed: number;
}

interface Filesystem {
  readonly id: string;
  readonly available: number;
}

/** The filesystem of the last line of `df -Pk`: device and size identify it, available in bytes. */
export function parseDf(stdout: string): Filesystem | null {
  const fields = stdout.trim().split("\n").pop()?.split(/\s+/) ?? [];
  const available = Number(fields[3]) * 1024;
  return fields.length >= 6 && Number.isFinite(available)
    ? { id: `${fields[0]}:${fields[1]}`, available }
    : null;
}

/** Pure: the refusals for places whose filesystem has less free than what goes there (summed per filesystem). */
export function shortfalls(places: readonly Place[]): string[] {
  const byFs = new Map<string, { available: number; needed: number; names: string[] }>();
  for (const place of places) {
    const fs = parseDf(place.df);
    if (!fs || place.needed <= 0) {
      continue; // no df there: the tool's own error remains
    }
    const entry = byFs.get(fs.id) ?? { available: fs.available, needed: 0, names: [] };
    entry.needed += place.needed;
    entry.names.push(`${place.name} (${formatBytes(place.needed)}: ${place.what})`);
    byFs.set(fs.id, entry);
  }
  return [...byFs.values()]
    .filter((fs) => fs.available < fs.needed)
    .map(
      (fs) =>
        `needs about ${formatBytes(fs.needed)} on the filesystem of ${fs.names.join(" and ")}, which has ${formatBytes(fs.available)} free`,
    );
}

/** The refusal of `what` when a filesystem it writes to is short, or null; `unchanged` ends it. */
export function roomProblem(
  what: string,
  places: readonly Place[],
  unchanged: string,
): string | null {
  const short = shortfalls(places);
  return short.length
    ? `Not enough free space for ${what}: it ${short.join("; it ")}. ${unchanged}`
    : null;
}

/** Total bytes of the snapshot's media files (restic's listing, nothing restored). */
export async function snapshotMediaBytes(session: OpsSession, entry: BackupEntry): Promise<number> {
  if (!entry.paths.includes(MEDIA_DIR)) {
    return 0;
  }
  // As an estimate of room: a listing that fails here counts nothing, and fails the step that reads the media.
  const files = await snapshotMedia(session, entry.snapshot).catch(() => []);
  return listingCount(files).bytes;
}

/** `df -Pk` of the live database's directory, and its `max_wal_size` in bytes. */
async function postgresPlace(session: OpsSession, manifest: Manifest): Promise<Place> {
  const pg = session.settings.names.postgresContainer;
  const df = await docker(["exec", pg, "df", "-Pk", PGDATA], {
    allowFailure: true,
  });
  const [wal] = await psql(
    session.settings,
    "SELECT pg_size_bytes(current_setting('max_wal_size'));",
    undefined,
    { allowFailure: true },
  );
  const maxWal = Number(wal) || DEFAULT_MAX_WAL;
  return {
    name: `the postgres volume ${session.settings.names.postgresVolume}`,
    what: "the database restored beside the live one, with its indexes and WAL",
    df: df.stdout,
    needed: databaseRoomNeeded(manifest.database.bytes, maxWal),
  };
}

/**
 * A restore's database and media stages, checked before either begins: up front, and the media again after
 * the undo backup (which took space on the same disk, maybe). Refused with nothing changed.
 */
export async function requireRestoreRoom(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  /** The snapshot's media bytes (`snapshotMediaBytes`), listed once per restore. */
  media: number,
  unchanged: string,
  /** false once the database is restored beside the live one: only the media stage is left to check. */
  database = true,
): Promise<void> {
  // An external server's disk is not ours to measure: its CREATE DATABASE or pg_restore fails cleanly.
  const measured = database && !session.settings.database;
  const places = measured ? [await postgresPlace(session, manifest)] : [];
  if (session.hasMedia && entry.paths.includes(MEDIA_DIR)) {
    const here = await session.exec(`df -Pk ${MEDIA_DIR}; du -sk ${MEDIA_DIR} | cut -f1`);
    const lines = here.stdout.trim().split("\n");
    const current = Number(lines.pop()) * 1024 || 0;
    places.push({
      name: `the media volume ${session.settings.names.mediaVolume}`,
      what: "the backup's media beyond what is there",
      df: lines.join("\n"),
      needed: mediaRoomNeeded(media, current),
    });
  }
  const problem = roomProblem(`the restore of ${entry.id}`, places, unchanged);
  if (problem) {
    throw refuse(problem, "Free space there or grow the filesystem, then retry.");
  }
}

/**
 * A drill's copy of the database and the media, checked once its scratch space exists and before anything is
 * copied: `media` and `database` are where they go (volumes or host folders; no database folder: the scratch
 * server's own volume, on Docker's data root like the media volume).
 */
export async function requireDrillRoom(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  where: { readonly media: string; readonly database?: string; readonly dir?: string },
): Promise<void> {
  const { settings } = session;
  const mounts = [
    { volume: where.media, path: "/m" },
    ...(where.database ? [{ volume: where.database, path: "/d" }] : []),
    { volume: stageVolume(settings.namePrefix), path: "/s", readOnly: true },
  ];
  const [media, df] = await Promise.all([
    snapshotMediaBytes(session, entry),
    toolbox(
      settings,
      mounts,
      `df -Pk /m; echo ---; df -Pk ${where.database ? "/d" : "/m"}; echo ---; df -Pk /s`,
    ),
  ]);
  const [mediaDf, databaseDf, stageDf] = df.stdout.split("---");
  const on = where.dir ? `in ${where.dir}` : "on Docker's data root";
  const problem = roomProblem(
    `the drill of ${entry.id}`,
    [
      {
        name: `the drill's scratch media ${on}`,
        what: "every media file",
        df: mediaDf,
        needed: mediaRoomNeeded(media, 0),
      },
      {
        name: `the drill's scratch database ${on}`,
        what: "the database with its indexes and WAL",
        df: databaseDf,
        needed: databaseRoomNeeded(manifest.database.bytes, DEFAULT_MAX_WAL),
      },
      // The dump is staged there, on Docker's data root, unless the drill's scratch is elsewhere (scratchRestore.ts).
      ...(where.dir ? [] : [stagedDump(stageDf ?? "", manifest, settings)]),
    ],
    "Nothing was copied or changed, and no drill was recorded.",
  );
  if (problem) {
    throw refuse(
      problem,
      `Free space there, or set \`edms:backup.drillScratch\` to a directory on a filesystem with room (\`pulumi config set --path edms:backup.drillScratch /mnt/big/edms-drills --stack ${settings.stack}\`), then retry.`,
    );
  }
}

/**
 * verify's test-restore into a scratch server whose files are on Docker's data root (its own volume): checked
 * once that server runs and before the dump goes in, so a verify, and the restore that runs one first, never
 * fills the disk the live PostgreSQL may write to.
 */
export async function requireTestRestoreRoom(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
  scratch: string,
): Promise<void> {
  const df = await docker(
    ["exec", scratch, "sh", "-c", 'df -Pk "$1"; echo ---; df -Pk "$2"', "df", PGDATA, STAGE_DIR],
    { allowFailure: true },
  );
  const [databaseDf, stageDf] = df.stdout.split("---");
  const problem = roomProblem(
    `the test-restore of ${entry.id}`,
    [
      {
        name: "the scratch database on Docker's data root",
        what: "the database with its indexes and WAL",
        df: databaseDf,
        needed: databaseRoomNeeded(manifest.database.bytes, DEFAULT_MAX_WAL),
      },
      stagedDump(stageDf ?? "", manifest, session.settings),
    ],
    "Nothing was restored or changed.",
  );
  if (problem) {
    throw refuse(
      problem,
      "Free space on Docker's data root (`docker system df` shows what uses it), then retry.",
    );
  }
}

/** The dump a scratch server restores from, on the session's stage (scratchRestore.ts). */
function stagedDump(df: string, manifest: Manifest, settings: Settings): Place {
  return {
    name: `the stage volume ${stageVolume(settings.namePrefix)}`,
    what: "the backup's dump, restored from there",
    df,
    needed: manifest.database.bytes,
  };
}

/**
 * Bytes of the blobs a snapshot refers to, as stored (`restic stats --mode raw-data`, the index only): what a
 * copy of it into a repository of its own writes. As an estimate of room: unreadable, it counts nothing, and
 * the copy fails with its own error.
 */
export async function snapshotStoredSize(session: OpsSession, entry: BackupEntry): Promise<number> {
  const stats = await session.exec(
    'lrestic --no-lock stats --json --mode raw-data "$1"',
    [entry.snapshot],
    {
      allowFailure: true,
    },
  );
  const parsed = parseJsonOrNull(stats.stdout, z.looseObject({ total_size: z.number() }));
  return stats.code === 0 && parsed ? parsed.total_size : 0;
}

/**
 * Scratch copies on the backups volume (an export's or an import's), checked before they are made: that volume
 * shares Docker's data root with the live PostgreSQL, which a full disk stops.
 */
export async function requireBackupsRoom(
  session: OpsSession,
  needed: number,
  what: string,
  doing: string,
): Promise<void> {
  const { settings } = session;
  const df = await session.exec(`df -Pk ${BACKUPS_DIR}`, [], { allowFailure: true });
  const problem = roomProblem(
    doing,
    [
      {
        name: `the backups volume ${settings.names.backupsVolume}`,
        what,
        df: df.stdout,
        needed: needed + SLACK,
      },
    ],
    "Nothing was copied or changed.",
  );
  if (problem) {
    throw refuse(
      problem,
      "Free space on the Docker host's data root (`docker system df`; `edms-ops backups prune` applies retention), then retry.",
    );
  }
}
