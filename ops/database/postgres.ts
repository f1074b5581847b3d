/**
 * Queries through `docker exec` in the postgres container, over its local socket: works without knowing
 * the database password, so operator commands never need a secret.
 */
import {
  BACKUP_DB_PASSFILE,
  BACKUP_DB_USER,
  DATABASE_CA_FILE,
  POSTGRES_DB,
  POSTGRES_USER,
} from "../../model/containers";
import { Settings } from "../../model/settings";
import { docker, inspectContainer, run, RunOptions, RunResult } from "../engine/docker";
import { engineless } from "../engine/engineless";
import { allSettledOrThrow, failure } from "../core/errors";
import { z } from "zod";
import { parseJson } from "../core/json";
import { lastLine } from "../core/log";
import { DatabaseState, DatabaseStateSchema } from "../store/manifest";
import {
  containerServer,
  DatabaseServer,
  externalClientArgs,
  externalClientVariables,
  serverName,
} from "./server";
import { opsLabels } from "../engine/dockerRun";
import { OPS_HELPER_ROLE } from "../store/restic";

/**
 * The stack's server: its postgres container, or `edms:database` reached by a client container of
 * `edms:postgresImage` (the server's major) with the credentials `backups init` wrote.
 */
export function stackServer(settings: Settings): DatabaseServer {
  const database = settings.database;
  if (!database) {
    return containerServer(settings.names.postgresContainer);
  }
  return {
    kind: "external",
    host: database.host,
    port: database.port,
    database: database.name,
    user: database.user,
    sslMode: database.sslMode,
    clientImage: settings.postgresImage,
    network: database.network ?? settings.names.databaseNetwork,
    credentialsVolume: settings.names.databaseCredentialsVolume,
    labels: opsLabels(settings, OPS_HELPER_ROLE),
  };
}

/** An external server answers edms-ops' login with its credentials (a query, not only pg_isready). */
export async function externalDatabaseCheck(
  settings: Settings,
): Promise<{ readonly ok: boolean; readonly detail: string }> {
  const server = stackServer(settings);
  const ready = await runPg(
    pgCommand(server, "psql", ["-d", server.database, "-XAtqc", "SELECT 1"]),
    {
      allowFailure: true,
    },
  );
  return ready.code === 0
    ? { ok: true, detail: "ok" }
    : { ok: false, detail: lastLine(ready.stderr || ready.stdout) || `exit ${ready.code}` };
}

export async function requirePostgres(settings: Settings): Promise<void> {
  const server = stackServer(settings);
  if (server.kind === "external") {
    const check = await externalDatabaseCheck(settings);
    if (!check.ok) {
      throw failure(
        `The external database ${serverName(server)} does not take edms-ops' connection: ${check.detail}.`,
        /database "[^"]*" does not exist/.test(check.detail)
          ? `Create it empty as the server's admin (\`CREATE DATABASE ${ident(server.database)} OWNER ${ident(server.user)};\`), then restore a backup into it: \`edms-ops restore <id> --stack ${settings.stack}\`.`
          : /password|pgpass|no password supplied/i.test(check.detail)
            ? `Write edms-ops' credentials again: \`EDMS_RESTIC_PASSWORD=… EDMS_DATABASE_PASSWORD=… edms-ops backups init --stack ${settings.stack}\` (a deploy writes them only on a new host, or when the password, the CA or the server changes), then retry.`
            : `Check the server, \`edms:database\` and its password, then redeploy (\`pulumi up --stack ${settings.stack}\`) and retry.`,
      );
    }
    return;
  }
  if (engineless()) {
    const server = stackServer(settings);
    const ready = await runPg(pgCommand(server, "pg_isready", ["-d", server.database]), {
      allowFailure: true,
    });
    if (ready.code !== 0) {
      throw failure(
        `PostgreSQL (${settings.names.postgresContainer}) does not take connections: ${(ready.stdout + ready.stderr).trim().split("\n").pop()}.`,
        `Check it with \`edms-ops status --stack ${settings.stack}\` and start it (\`docker start ${settings.names.postgresContainer}\`).`,
      );
    }
    return;
  }
  const state = await inspectContainer(settings.names.postgresContainer);
  if (!state.running) {
    throw failure(
      `PostgreSQL container ${settings.names.postgresContainer} is ${state.exists ? "not running" : "missing"}.`,
      `Deploy the stack first (npm run up -- --stack ${settings.stack}) or start it with \`docker start ${settings.names.postgresContainer}\`.`,
    );
  }
}

/** Starts the stack's stopped postgres container and waits (up to a minute) until it takes connections. */
export async function startPostgres(settings: Settings): Promise<void> {
  if (settings.database) {
    return requirePostgres(settings);
  }
  const name = settings.names.postgresContainer;
  await docker(["start", name]);
  for (let attempt = 0; attempt < 60; attempt += 1) {
    const ready = await docker(
      ["exec", name, "pg_isready", "-U", POSTGRES_USER, "-d", POSTGRES_DB],
      {
        allowFailure: true,
      },
    );
    if (ready.code === 0) {
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw failure(
    `PostgreSQL container ${name} did not take connections within 60 s of its start.`,
    `Check its log (\`docker logs ${name}\`), then retry.`,
  );
}

/**
 * Every session edms-ops opens ignores the database's and the roles' own limits (`ALTER DATABASE … SET`,
 * hardening a real server often has): a statement timeout would cancel the one statement that counts every
 * row, a lock timeout a DROP of a side database, an idle-in-transaction timeout the exported snapshot while
 * pg_dump reads, and a read-only default every grant of a restore. Options from the client outrank those
 * settings, and each of these may be set by any role.
 */
export const OPS_SESSION_OPTIONS =
  "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off";

/** A client tool's command line: what to run, and the environment it adds (never a secret). */
export interface PgCommand {
  readonly command: string;
  readonly args: string[];
  readonly env: Record<string, string>;
}

/**
 * A postgres client tool against a server: in a container, `docker exec` as the superuser over the local
 * socket (no password needed); engineless (the scheduler), here over the data network as the backup role
 * (the container's name is the server's host name there), whose pgpass file the program uploaded; an external
 * server, a client container (server.ts). A `docker exec` gets `env` as `-e` (an exec'd process' environment).
 */
export function pgCommand(
  server: DatabaseServer,
  tool: "psql" | "pg_dump" | "pg_restore" | "pg_isready",
  args: readonly string[],
  extra: Record<string, string> = {},
): PgCommand {
  const env = { PGOPTIONS: OPS_SESSION_OPTIONS, ...extra };
  if (server.kind === "external" && engineless()) {
    // The scheduler: its own client (its image is built on edms:postgresImage) as the backup role, whose
    // pgpass file and the server's CA the program uploaded; on the network that reaches the server.
    return {
      command: tool,
      args: ["-h", server.host, "-p", String(server.port), "-U", BACKUP_DB_USER, ...args],
      env: {
        ...externalClientVariables(server, { pgpass: BACKUP_DB_PASSFILE, ca: DATABASE_CA_FILE }),
        ...env,
      },
    };
  }
  if (server.kind === "external") {
    return { command: "docker", args: externalClientArgs(server, tool, args, env), env: {} };
  }
  const { container } = server;
  if (engineless()) {
    return {
      command: tool,
      args: ["-h", container, "-U", BACKUP_DB_USER, ...args],
      env: { PGPASSFILE: BACKUP_DB_PASSFILE, ...env },
    };
  }
  const envFlags = Object.entries(env).flatMap(([name, value]) => ["-e", `${name}=${value}`]);
  return {
    command: "docker",
    args: ["exec", "-i", ...envFlags, container, tool, "-U", POSTGRES_USER, ...args],
    env: {},
  };
}

export function runPg(command: PgCommand, options: RunOptions = {}): Promise<RunResult> {
  return run(command.command, command.args, { ...options, env: command.env });
}

/** `psql` against the stack's server (pgCommand): unaligned, tab-separated, stop on the first error. */
export function psqlCommand(server: DatabaseServer, database = server.database): PgCommand {
  return pgCommand(server, "psql", [
    "-d",
    database,
    "-X",
    "-q",
    "-At",
    "-F",
    "\t",
    "-v",
    "ON_ERROR_STOP=1",
  ]);
}

/**
 * Django's migration table, schema-qualified: in any schema, not only public (an app may run with its own
 * search_path); the one on the session's search_path first, then public. No row: no Django schema.
 */
export const MIGRATIONS_TABLE_SQL =
  "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
  "WHERE c.relname = 'django_migrations' AND c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') " +
  // The first on the search_path, as Django itself finds it (a stale copy left in public after an app
  // moved to its own schema comes after); off the path, public, then by name.
  "ORDER BY array_position(current_schemas(false), n.nspname) NULLS LAST, n.nspname = 'public' DESC, n.nspname LIMIT 1;";

/** Latest migration per app, from the table MIGRATIONS_TABLE_SQL named (already quoted by format %I). */
export const migrationsSql = (table: string) =>
  `SELECT app, max(name) FROM ${table} GROUP BY app ORDER BY app;`;

export const USER_SCHEMA =
  "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/**
 * Row count of every table in every schema of the database (not only public: other schemas are data too), in
 * one statement, so it runs inside the backup's exported snapshot. Keys: the table name in public,
 * `schema.table` elsewhere; JSON-encoded, so no name (tabs, newlines, unicode) can break the line format.
 */
export const COUNTS_SQL =
  "SELECT to_json(CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END)::text, " +
  "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text " +
  `FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND ${USER_SCHEMA} ORDER BY 1;`;

/**
 * What a restore must bring back besides rows: schemas, views, sequences, functions and large objects (a table
 * count says nothing of those).
 */
export const OBJECTS_SQL =
  [
    `SELECT 'schemas', count(*) FROM pg_namespace n WHERE ${USER_SCHEMA}`,
    `SELECT 'views', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND ${USER_SCHEMA}`,
    `SELECT 'sequences', count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND ${USER_SCHEMA}`,
    `SELECT 'functions', count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_SCHEMA}`,
    "SELECT 'large objects', count(*) FROM pg_largeobject_metadata",
  ].join(" UNION ALL ") + ";";

export function parseCounts(rows: readonly string[]): Record<string, number> {
  return Object.fromEntries(
    rows.map((row) => {
      const at = row.lastIndexOf("\t");
      const key = row.slice(0, at);
      const name = key.startsWith('"')
        ? parseJson(key, z.string(), "a quoted table name from psql")
        : key;
      return [name, Number(row.slice(at + 1))];
    }),
  );
}

export function parseMigrations(rows: readonly string[]): Record<string, string> {
  return Object.fromEntries(rows.map((row) => row.split("\t")));
}

export async function psql(
  settings: Settings,
  sql: string,
  server: DatabaseServer = stackServer(settings),
  options: RunOptions = {},
  database?: string,
): Promise<string[]> {
  const result = await runPg(psqlCommand(server, database), { input: sql, ...options });
  return result.stdout.split("\n").filter((line) => line.length > 0);
}

/** The database has a Django schema: a django_migrations table in any schema. */
export async function hasSchema(settings: Settings, server?: DatabaseServer): Promise<boolean> {
  return (await migrationsTable(settings, server)) !== undefined;
}

async function migrationsTable(
  settings: Settings,
  server?: DatabaseServer,
): Promise<string | undefined> {
  const [table] = await psql(settings, MIGRATIONS_TABLE_SQL, server);
  return table;
}

const OWNED_OBJECTS = [
  `SELECT 'relations' AS kind, c.relowner AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ${USER_SCHEMA}`,
  `SELECT CASE WHEN p.prosecdef THEN 'security definer functions' ELSE 'functions' END, p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_SCHEMA}`,
  `SELECT 'schemas', n.nspowner FROM pg_namespace n WHERE ${USER_SCHEMA}`,
  `SELECT 'types', t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('d', 'e', 'r') AND ${USER_SCHEMA}`,
  "SELECT 'large objects', lomowner FROM pg_largeobject_metadata",
].join(" UNION ALL ");

/** Every role a restore of this database needs: owners and grantees (pg_shdepend), role settings, the ACL. */
const ROLES = `SELECT pg_get_userbyid(refobjid)::text AS r FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass AND (dbid = db.oid OR (classid = 'pg_database'::regclass AND objid = db.oid))
  UNION SELECT pg_get_userbyid(setrole)::text FROM pg_db_role_setting WHERE setdatabase = db.oid AND setrole <> 0
  UNION SELECT pg_get_userbyid(db.datdba)::text`;

/** One JSON line: the state of the database psql is connected to. */
export const DATABASE_STATE_SQL = `SELECT json_build_object(
  'owner', pg_get_userbyid(db.datdba),
  'connectionLimit', db.datconnlimit,
  'comment', shobj_description(db.oid, 'pg_database'),
  'acl', CASE WHEN db.datacl IS NULL THEN NULL ELSE coalesce((SELECT json_agg(json_build_object(
      'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
      'grantor', pg_get_userbyid(a.grantor), 'privilege', a.privilege_type, 'grantable', a.is_grantable)
      ORDER BY a.grantor, a.grantee, a.privilege_type) FROM aclexplode(db.datacl) a), '[]'::json) END,
  'settings', coalesce((SELECT to_json(setconfig) FROM pg_db_role_setting WHERE setdatabase = db.oid AND setrole = 0), '[]'::json),
  'roleSettings', coalesce((SELECT json_object_agg(pg_get_userbyid(setrole), setconfig) FROM pg_db_role_setting WHERE setdatabase = db.oid AND setrole <> 0), '{}'::json),
  'owners', coalesce((SELECT json_object_agg(k, n) FROM (SELECT o.kind || ' owned by ' || pg_get_userbyid(o.owner) AS k, count(*) AS n FROM (${OWNED_OBJECTS}) o GROUP BY 1) x), '{}'::json),
  'roles', coalesce((SELECT json_agg(r ORDER BY r) FROM (${ROLES}) roles), '[]'::json)
)::text FROM pg_database db WHERE db.datname = current_database();`;

export function parseDatabaseState(rows: readonly string[]): DatabaseState {
  return parseJson(rows.join("\n"), DatabaseStateSchema, "the database's state from psql");
}

export interface Inventory {
  /** Rows per table, every schema (see COUNTS_SQL). */
  readonly tables: Record<string, number>;
  /** Schemas, views, sequences, functions, large objects (see OBJECTS_SQL). */
  readonly objects: Record<string, number>;
  /** The database's own state and object ownership (see DATABASE_STATE_SQL). */
  readonly state: DatabaseState;
}

/** What a database holds, as a backup's manifest records it: the integrity fingerprint of a restore. */
export async function inventory(
  settings: Settings,
  server?: DatabaseServer,
  database?: string,
): Promise<Inventory> {
  // Three reads, each its own session, asked at once.
  const [tables, objects, state] = await allSettledOrThrow([
    psql(settings, COUNTS_SQL, server, {}, database),
    psql(settings, OBJECTS_SQL, server, {}, database),
    psql(settings, DATABASE_STATE_SQL, server, {}, database),
  ]);
  return {
    tables: parseCounts(tables),
    objects: parseCounts(objects),
    state: parseDatabaseState(state),
  };
}

/** Latest applied migration per Django app (`{documents: "0002_document_slug"}`). */
export async function migrationState(
  settings: Settings,
  server?: DatabaseServer,
): Promise<Record<string, string>> {
  const table = await migrationsTable(settings, server);
  return table ? parseMigrations(await psql(settings, migrationsSql(table), server)) : {};
}

export async function countOf(settings: Settings, table: string): Promise<number | undefined> {
  const [exists] = await psql(settings, `SELECT to_regclass('public.${table}') IS NOT NULL;`);
  if (exists !== "t") {
    return undefined;
  }
  const [count] = await psql(settings, `SELECT count(*) FROM public.${table};`);
  return Number(count);
}

/** Where statements about other databases run (CREATE, DROP, the swap's renames): every server has it. */
export const MAINTENANCE_DATABASE = "postgres";

/** The database a restore fills beside the live one, and the name the live one gets when it is swapped out. */
export const sideDatabase = (server: DatabaseServer) => `${server.database}_restore`;
export const replacedDatabase = (server: DatabaseServer) => `${server.database}_pre_restore`;

export const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;
export const ident = (value: string) => `"${value.replace(/"/g, '""')}"`;

/** SQL that ends every session on, and drops, the side databases a killed restore may have left. */
export function dropSideDatabasesSql(server: DatabaseServer): string {
  const sides = [sideDatabase(server), replacedDatabase(server)];
  const names = sides.map(literal).join(", ");
  return (
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (${names});\n` +
    sides.map((db) => `DROP DATABASE IF EXISTS ${ident(db)} WITH (FORCE);`).join("\n")
  );
}
