/**
 * The database half of a restore, done beside the live database instead of over it: the dump is restored into
 * a new database (`<db>_restore`), checked there against the backup's manifest, and only then swapped in by
 * renaming both databases in one transaction. Until that rename the live database is untouched, whatever
 * happens (pg_restore failing, the stream cut, a full disk, a kill); after it, the live database is the whole
 * backup. Restoring into an empty database also needs no `--clean`: nothing of a later release (tables in other
 * schemas, views, functions) survives, and no transaction has to lock every large object at once (which runs
 * out of lock memory at a few thousand of them).
 *
 * Grants to roles this server lacks (a role only production has, restored on a new host) are not dropped:
 * the roles are created NOLOGIN and the grants applied, and the operator is told. The same for the owners of
 * objects: ownership is kept. The database's own state (`ALTER DATABASE … SET`, role-in-database settings,
 * privileges, comment, connection limit; see dbstate.ts) is applied to the side database before the swap,
 * and the side database is analyzed, so the swap brings in the whole database at once.
 */
import { Settings } from "../../model/settings";
import { BackupEntry } from "../store/restic";
import { lastLine } from "../core/log";
import { Manifest } from "../store/manifest";
import {
  dropSideDatabasesSql,
  ident,
  inventory,
  requirePostgres,
  literal,
  MAINTENANCE_DATABASE,
  OPS_SESSION_OPTIONS,
  pgCommand,
  psql,
  psqlCommand,
  runPg,
  replacedDatabase,
  sideDatabase,
  stackServer,
} from "./postgres";
import { allSettledOrThrow, failure, incomplete } from "../core/errors";
import { hostFailure, hostFaultLine } from "../core/hostFault";
import { progress, say } from "../core/log";
import { OpsSession } from "../engine/session";
import { inventoryProblems } from "../backup/verify";
import { streamDump, streamedProblem } from "../backup/scratchRestore";
import { applyDatabaseStateSql, createMissingRoles } from "./dbstate";
import { grantAppRights } from "./appRole";

const SIDE_RESTORE_FIX =
  "The live database is unchanged; choose another backup (`edms-ops backups list`) or check this one with `edms-ops verify <id>`.";

function admin(settings: Settings, sql: string) {
  return psql(settings, sql, undefined, {}, MAINTENANCE_DATABASE);
}

interface RoleProblem {
  readonly role: string;
  /** The whole archive entry (an ACL entry can hold several GRANTs; the first error aborted all of them). */
  readonly command: string;
}

const MISSING_ROLE = /ERROR: {1,2}role "(.*)" does not exist\s*$/;

/** The stack's database on its server, the side one a restore fills, and the name the replaced one gets. */
function databases(settings: Settings) {
  const server = stackServer(settings);
  return { live: server.database, side: sideDatabase(server), replaced: replacedDatabase(server) };
}
/**
 * pg_restore's errors, split into grants that name a role this server lacks (fixable) and anything else
 * (the restore is not trusted). pg_restore prints each as `pg_restore: error: could not execute query:
 * ERROR: …` followed by `Command was: …` and the entry's further lines up to a blank line. The role name
 * is printed raw (a quote inside it is not doubled), so it is everything between the first and last quote.
 */
export function classifyRestoreErrors(stderr: string): {
  missingRoles: RoleProblem[];
  other: string[];
} {
  const missingRoles: RoleProblem[] = [];
  const other: string[] = [];
  const lines = stderr.split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    if (!line.startsWith("pg_restore: error: ")) {
      continue;
    }
    const command: string[] = [];
    if (lines[i + 1]?.startsWith("Command was: ")) {
      command.push(lines[i + 1].slice("Command was: ".length));
      for (
        i += 2;
        i < lines.length && lines[i] !== "" && !lines[i].startsWith("pg_restore:");
        i += 1
      ) {
        command.push(lines[i]);
      }
      i -= 1;
    }
    const role = MISSING_ROLE.exec(line);
    if (
      role &&
      command.length &&
      /^(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES|ALTER .+ OWNER TO) /.test(command[0])
    ) {
      missingRoles.push({ role: role[1], command: command.join("\n") });
    } else {
      other.push([line, ...command.slice(0, 1)].join(" "));
    }
  }
  return { missingRoles, other };
}

/**
 * Applies grant entries that failed on missing roles: each missing role is created NOLOGIN and the entry run
 * again, until it applies (an entry reports only its first missing role). Returns the roles created.
 */
async function applyGrants(settings: Settings, failed: readonly RoleProblem[]): Promise<string[]> {
  const { side } = databases(settings);
  const created: string[] = [];
  const createRole = async (role: string) => {
    progress(`creating role ${role} (NOLOGIN): the backup's grants name it`);
    await admin(
      settings,
      `DO $$BEGIN CREATE ROLE ${ident(role)} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$;`,
    );
    created.push(role);
  };
  for (const entry of failed) {
    if (!created.includes(entry.role)) {
      await createRole(entry.role);
    }
    for (let attempt = 0; ; attempt += 1) {
      const run = await runPg(psqlCommand(stackServer(settings), side), {
        input: entry.command,
        allowFailure: true,
      });
      const next = MISSING_ROLE.exec(run.stderr.trim().split("\n")[0] ?? "");
      if (run.code === 0) {
        break;
      }
      if (!next || attempt >= 50) {
        throw failure(`re-applying a grant failed: ${lastLine(run.stderr)}`, SIDE_RESTORE_FIX);
      }
      await createRole(next[1]);
    }
  }
  return [...new Set(created)];
}

/**
 * A new, empty side database with the live one's encoding and locale. A live database that is gone (dropped:
 * the very disaster a restore is for) is first made again, empty, so the restored one can take its place.
 */
async function createSide(settings: Settings): Promise<void> {
  const { live, side } = databases(settings);
  await admin(settings, dropSideDatabasesSql(stackServer(settings)));
  const liveFormat = async () =>
    (
      await admin(
        settings,
        `SELECT pg_encoding_to_char(encoding) || E'\\t' || datcollate || E'\\t' || datctype FROM pg_database WHERE datname = ${literal(live)};`,
      )
    )[0];
  let format = await liveFormat();
  if (format === undefined) {
    progress(
      `the live database ${live} is gone (dropped?): making it again, empty, for the restored one to replace`,
    );
    await admin(settings, `CREATE DATABASE ${ident(live)};`);
    format = await liveFormat();
  }
  const [encoding, collate, ctype] = format.split("\t");
  await admin(
    settings,
    `CREATE DATABASE ${ident(side)} TEMPLATE template0 ENCODING ${literal(encoding)} LC_COLLATE ${literal(collate)} LC_CTYPE ${literal(ctype)};`,
  );
}

/** What restoring into the side database gave: the roles it had to create, or what is wrong with the backup. */
export type SideRestore =
  { readonly roles: string[]; readonly problems?: undefined } | { readonly problems: string[] };

/** pg_restore of the snapshot's dump into the side database. */
async function restoreIntoSide(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
): Promise<SideRestore> {
  const { settings } = session;
  const { side } = databases(settings);
  const server = stackServer(settings);
  const state = manifest.databaseState;
  // Owners are kept (a SECURITY DEFINER function must not become the superuser's); the roles they name are
  // created NOLOGIN first. Backups before `databaseState` restore without owners, as they always did.
  const owners = state
    ? await createMissingRoles(settings, state.roles, server, "the backup names it")
    : [];
  progress(`restoring database into ${side} beside the live one`);
  const { sha256, dumped, consumed } = await streamDump(session, entry, (input) =>
    runPg(
      pgCommand(server, "pg_restore", ["-d", side, ...(state ? [] : ["--no-owner"])], {
        // Safe: the swap's own commit flushes the WAL before it, so nothing of this is lost once swapped.
        PGOPTIONS: `${OPS_SESSION_OPTIONS} -c synchronous_commit=off`,
      }),
      { input: input as never, allowFailure: true },
    ),
  );
  const { missingRoles, other } = classifyRestoreErrors(consumed.stderr);
  const failed = consumed.code !== 0 && (other.length > 0 || !missingRoles.length);
  // Without --exit-on-error pg_restore reads the whole dump: a hash that differs is the backup's, whatever else.
  if (dumped.code === 0 && sha256 !== manifest.database.sha256) {
    return {
      problems: ["db.dump: sha256 does not match the manifest (file changed or corrupted)"],
    };
  }
  if (failed) {
    // A server that went away, a full disk or memory run out is no fault of the backup: said as such.
    await requirePostgres(settings);
    const fault = hostFaultLine(consumed.stderr);
    if (fault) {
      throw hostFailure(
        `The restore of ${entry.id} into ${side} stopped on the host, not on the backup: ${fault}`,
        settings.database
          ? `Free what the external database server ran out of (disk space, memory), then run \`edms-ops restore ${entry.id} --stack ${settings.stack}\` again.`
          : `Free what it ran out of on the Docker host (disk space where the postgres volume is: \`docker system df\`, \`df -h\`; memory), then run \`edms-ops restore ${entry.id} --stack ${settings.stack}\` again.`,
      );
    }
  }
  const problem = streamedProblem(
    { sha256, dumped },
    manifest.database.sha256,
    failed
      ? `db.dump does not restore: ${(other.length ? other.slice(0, 3).join("; ") : lastLine(consumed.stderr)) || `exit ${consumed.code}`}`
      : null,
  );
  if (problem) {
    return { problems: [problem] };
  }
  return {
    roles: [...owners, ...(missingRoles.length ? await applyGrants(settings, missingRoles) : [])],
  };
}

/**
 * Restores the snapshot's dump into the side database, gives it the database's own state and statistics, and
 * checks it against the manifest: this is the restore's test-restore too (verify's checks, in the server
 * the data will serve from). Returns the roles it had to create, or the backup's problems (the side database
 * dropped). Throws, the side database dropped, when the server fails it. The live database is untouched.
 */
export async function restoreBeside(
  session: OpsSession,
  entry: BackupEntry,
  manifest: Manifest,
): Promise<SideRestore> {
  const { settings } = session;
  const { side } = databases(settings);
  await createSide(settings);
  try {
    const restored = await restoreIntoSide(session, entry, manifest);
    if (restored.problems) {
      await dropSide(settings);
      return restored;
    }
    if (manifest.databaseState) {
      // Settings, privileges and comment belong to the database's OID: given now, they follow the rename.
      progress("applying the database's own settings, privileges and comment");
      await admin(settings, applyDatabaseStateSql(manifest.databaseState, side));
    }
    // Statistics belong to the database too: the restored one serves with them from its first query. The
    // check reads exact counts and the catalogue, which ANALYZE leaves alone: both at once.
    progress(
      `ANALYZE ${side}, and checking it against the backup (rows, objects, owners, settings)`,
    );
    const [, found] = await allSettledOrThrow([
      psql(settings, "ANALYZE;", undefined, {}, side),
      inventory(settings, undefined, side),
    ]);
    const problems = inventoryProblems(manifest, found);
    if (problems.length) {
      await dropSide(settings);
      return { problems };
    }
    // A backup from before the application role existed grants it nothing: web and worker need these.
    await grantAppRights(settings, side);
    return restored;
  } catch (err) {
    await dropSide(settings).catch(() => undefined);
    throw err;
  }
}

/** Drops what a restore left beside the live database (before its swap, or the replaced one after it). */
export async function dropSide(settings: Settings): Promise<void> {
  await admin(settings, dropSideDatabasesSql(stackServer(settings)));
}

/**
 * Swaps the side database in: every session on the live one ends (web and worker are already stopped), both
 * renames commit together, then the replaced database is dropped (the undo backup holds it).
 */
export async function swapIn(settings: Settings): Promise<void> {
  const { live, side, replaced } = databases(settings);
  const names = [live, side].map(literal).join(", ");
  const swap =
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (${names}) AND pid <> pg_backend_pid();\n` +
    `BEGIN;\nALTER DATABASE ${ident(live)} RENAME TO ${ident(replaced)};\n` +
    `ALTER DATABASE ${ident(side)} RENAME TO ${ident(live)};\nCOMMIT;`;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await admin(settings, swap);
      break;
    } catch (err) {
      // A client reconnecting between the terminate and the rename: end it again.
      if (attempt >= 5 || !/being accessed by other users/.test((err as Error).message)) {
        const committed = await swapCommitted(settings);
        if (committed) {
          // Only the reply was lost (postgres stopping just after COMMIT): the swap is done.
          break;
        }
        if (committed === null) {
          throw incomplete(
            `Postgres stopped answering while the restored database was being swapped in, so whether the live database is the old or the restored one is not known (${lastLine((err as Error).message)}).`,
            "Start postgres, then run the same restore again: it finishes the restore either way.",
          );
        }
        throw failure(
          `Could not swap the restored database in; the live database is unchanged (${lastLine((err as Error).message)}).`,
          "Stop what still connects to the database (web, worker, a psql session), then run the restore again.",
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * After a swap that reported an error, whether it committed anyway: the restored database no longer under its
 * side name and the old one under the replaced name. Null when postgres cannot be asked.
 */
async function swapCommitted(settings: Settings): Promise<boolean | null> {
  const { side, replaced } = databases(settings);
  const names = [side, replaced].map(literal).join(", ");
  try {
    const found = await admin(
      settings,
      `SELECT datname FROM pg_database WHERE datname IN (${names});`,
    );
    return !found.includes(side) && found.includes(replaced);
  } catch {
    return null;
  }
}

/** The database the swap replaced goes (the undo backup holds it); a failure here is cleaned up next time. */
export async function dropReplaced(settings: Settings): Promise<void> {
  const { replaced } = databases(settings);
  progress("restored database swapped in; dropping the replaced one");
  await admin(settings, `DROP DATABASE IF EXISTS ${ident(replaced)} WITH (FORCE);`).catch(
    (err: Error) => progress(`could not drop ${replaced} yet (${lastLine(err.message)})`),
  );
}

export function reportCreatedRoles(roles: readonly string[]): void {
  if (roles.length) {
    say(
      `Created role(s) ${roles.join(", ")} (NOLOGIN) that the backup's grants name; give them a login with \`ALTER ROLE … LOGIN PASSWORD …\` if they need one.`,
    );
  }
}
