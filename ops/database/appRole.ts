/**
 * The application role (model/containers.ts APP_DB_USER) that web and worker connect as. The superuser owns
 * the schema and runs every migration and operation; the application role may only read and write the rows
 * of the schema `public`, where Django keeps its tables. Default privileges give it the same rights on every
 * table and sequence the superuser creates there later (a migration), so a release needs no step of its own.
 *
 * The role is cluster-wide and keeps its password through restores; its rights live in the database and
 * travel with its dumps. A backup taken before the role existed has none of them, so every path that brings
 * a database in (migrate, restore, reset-app) grants them again: `grantAppRights` is idempotent and cheap.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "crypto";
import { APP_DB_USER, BACKUP_DB_USER, POSTGRES_USER, stackDatabase } from "../../model/containers";
import { Settings } from "../../model/settings";
import { progress } from "../core/log";
import { ident, literal, psql } from "./postgres";

const SCRAM_ITERATIONS = 4096;

/**
 * A SCRAM-SHA-256 verifier of `password` (RFC 5802/7677, PostgreSQL's stored format): the server gets the
 * verifier, never the password, so no statement log or `pg_stat_activity` can show it.
 */
export function scramVerifier(password: string, salt = randomBytes(16)): string {
  const salted = pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

const ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";

/** psql sets `is_super`: whether edms-ops connects as a superuser (the stack's own server) or not (external). */
const IS_SUPER = "SELECT rolsuper AS is_super FROM pg_roles WHERE rolname = current_user \\gset";

/**
 * Creates the role (default: the application's) or resets its attributes, the password as a verifier. A
 * role that is not a superuser (an external server's admin, with CREATEROLE) may create a role with the
 * NO… attributes but not name SUPERUSER, REPLICATION or BYPASSRLS in an ALTER (PostgreSQL 15 and 16): it
 * resets the rest, and a role that is a superuser already stays one (the ALTER is refused, loudly).
 */
export function appRoleSql(password: string, name = APP_DB_USER): string {
  const role = ident(name);
  const verifier = literal(scramVerifier(password));
  return [
    `DO $$BEGIN CREATE ROLE ${role} WITH ${ROLE_ATTRIBUTES}; EXCEPTION WHEN duplicate_object THEN NULL; END$$;`,
    IS_SUPER,
    "\\if :is_super",
    `ALTER ROLE ${role} WITH ${ROLE_ATTRIBUTES} PASSWORD ${verifier};`,
    "\\else",
    `ALTER ROLE ${role} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD ${verifier};`,
    "\\endif",
  ].join("\n");
}

/**
 * The backup role (model/containers.ts BACKUP_DB_USER) the scheduler dumps as: the same attributes but
 * BYPASSRLS, and `pg_read_all_data` (SELECT on every table, view and sequence, USAGE on every schema;
 * PostgreSQL 14+); neither writes anything. Large objects are not covered by pg_read_all_data: a database
 * holding some the role may not read fails its scheduled backups, loudly (recorded failed, alerted).
 */
export function backupRoleSql(password: string): string {
  const role = ident(BACKUP_DB_USER);
  return [
    appRoleSql(password, BACKUP_DB_USER),
    // Row-level security would hide rows from its dump (pg_dump then refuses): BYPASSRLS reads them all.
    // Only a superuser may give it (on 16 also a role that has it): elsewhere a table with row-level
    // security fails the scheduled backups, loudly.
    "SELECT rolsuper OR (rolbypassrls AND current_setting('server_version_num')::int >= 160000) AS may_bypass FROM pg_roles WHERE rolname = current_user \\gset",
    "\\if :may_bypass",
    `ALTER ROLE ${role} BYPASSRLS;`,
    "\\else",
    `\\echo 'the connecting role may not give ${BACKUP_DB_USER} BYPASSRLS: scheduled backups of a table with row-level security fail'`,
    "\\endif",
    // PostgreSQL 14 brought pg_read_all_data; on an older server the role reads nothing of the data, and
    // scheduled backups fail loudly (recorded and alerted) instead of the deploy.
    // A role that is not a superuser may grant it on 15 with CREATEROLE, on 16 only with its ADMIN option.
    "SELECT current_setting('server_version_num')::int >= 140000 AS reads_all \\gset",
    "\\if :reads_all",
    `SELECT r.rolsuper OR current_setting('server_version_num')::int < 160000 OR EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = to_regrole('pg_read_all_data') AND m.member = r.oid AND m.admin_option) AS may_grant FROM pg_roles r WHERE r.rolname = current_user \\gset`,
    "\\if :may_grant",
    `GRANT pg_read_all_data TO ${role};`,
    "\\else",
    `\\echo 'the connecting role may not grant pg_read_all_data: ${BACKUP_DB_USER} cannot read the data, so scheduled backups fail; grant it as the server admin: GRANT pg_read_all_data TO ${BACKUP_DB_USER};'`,
    "\\endif",
    "\\else",
    `\\echo 'PostgreSQL before 14 has no pg_read_all_data: ${BACKUP_DB_USER} cannot read the data, so scheduled backups fail; use edms:postgresImage postgres:14 or newer'`,
    "\\endif",
  ].join("\n");
}

/**
 * Rows of `public` that the schema's owner owns, nothing else (the role edms-ops connects as, which runs Django's
 * migrations: the stack's superuser, or an external server's admin): no
 * TRUNCATE, REFERENCES or TRIGGER, no CREATE in any schema (PostgreSQL 15+ gives PUBLIC no CREATE on
 * `public`; older servers did, so it is revoked). A table another role owns keeps the grants its owner
 * chose, as a restore brought them back. CONNECT is granted by name, so a database whose CONNECT was
 * revoked from PUBLIC (a hardening step) still serves the app. Skipped where the role does not exist yet
 * (a stack whose migrate hook has not created it).
 */
export function appRightsSql(database: string): string {
  const role = ident(APP_DB_USER);
  const perObject =
    "SELECT format('GRANT %s ON %s %I.%I TO %I', " +
    "CASE WHEN c.relkind = 'S' THEN 'USAGE, SELECT, UPDATE' WHEN c.relkind IN ('v', 'm') THEN 'SELECT' ELSE 'SELECT, INSERT, UPDATE, DELETE' END, " +
    "CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname, " +
    `${literal(APP_DB_USER)}) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ` +
    `WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) \\gexec`;
  return [
    // The backup role connects by name too (a database whose CONNECT was revoked from PUBLIC).
    `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(BACKUP_DB_USER)}) AS has_backup_role \\gset`,
    "\\if :has_backup_role",
    `GRANT CONNECT ON DATABASE ${ident(database)} TO ${ident(BACKUP_DB_USER)};`,
    "\\endif",
    `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(APP_DB_USER)}) AS has_role \\gset`,
    "\\if :has_role",
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
    `GRANT CONNECT ON DATABASE ${ident(database)} TO ${role};`,
    `GRANT USAGE ON SCHEMA public TO ${role};`,
    perObject,
    `ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${role};`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${role};`,
    "SELECT 'granted';",
    "\\else",
    "SELECT 'no role';",
    "\\endif",
  ].join("\n");
}

/**
 * Gives the application role its rights (again) in the live database, or in `database` (a restore's side
 * database, before its swap); a no-op where they are already given.
 */
export async function grantAppRights(
  settings: Settings,
  database = stackDatabase(settings),
): Promise<void> {
  const [outcome] = await psql(settings, appRightsSql(database), undefined, {}, database);
  if (outcome !== "granted") {
    progress(
      `role ${APP_DB_USER} does not exist yet: the next deploy's migrate creates it (web and worker of this release connect as ${POSTGRES_USER})`,
    );
  }
}

/** What the role statements said (psql's \\echo: a right the connecting role could not give). */
const sayEach = (lines: readonly string[]) => lines.forEach((line) => progress(`  ${line}`));

/**
 * The migrate hook's part: the roles with their logins and passwords (from the hook's EDMS_APP_DB_PASSWORD
 * and EDMS_BACKUP_DB_PASSWORD), then
 * its rights. An operator's `edms-ops migrate` has no password and only grants the rights.
 */
export async function ensureAppRole(settings: Settings): Promise<void> {
  const password = process.env.EDMS_APP_DB_PASSWORD;
  if (password) {
    progress(`giving role ${APP_DB_USER} its login (not a superuser)`);
    sayEach(await psql(settings, appRoleSql(password), undefined, {}, "postgres"));
  }
  const backupPassword = process.env.EDMS_BACKUP_DB_PASSWORD;
  if (backupPassword) {
    progress(`giving role ${BACKUP_DB_USER} its login (reads all data, writes none)`);
    sayEach(await psql(settings, backupRoleSql(backupPassword), undefined, {}, "postgres"));
  }
  await grantAppRights(settings);
}

/**
 * Waits until no session of the application role is left, once web and worker have stopped: a statement their
 * process sent before it went may still be running or committing in its backend. Ended after 2 s; a failure
 * after 5 s. What reads the data after a stop (an undo backup's snapshot) would otherwise miss that write.
 * Any other session over the network counts too but the backup role's (the scheduler's, which the stack lock
 * keeps out of the way): web and worker deployed before the application role connect as the owner, and
 * edms-ops' own sessions meanwhile come through the server's socket (its dump starts after this). Only the
 * stack's database counts: a server may hold others.
 */
export function appSessionsGoneSql(database: string): string {
  const sessions =
    `FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = ${literal(database)} AND ` +
    // A role that is no superuser sees another role's sessions without backend_type or client_addr (unless
    // it has pg_read_all_stats): the app role's are found by name, which every session shows.
    `(usename = ${literal(APP_DB_USER)} OR (backend_type = 'client backend' AND client_addr IS NOT NULL AND usename <> ${literal(BACKUP_DB_USER)}))`;
  return `DO $$ BEGIN
  FOR i IN 1..50 LOOP
    PERFORM pg_stat_clear_snapshot();
    IF NOT EXISTS (SELECT 1 ${sessions}) THEN RETURN; END IF;
    IF i = 20 THEN PERFORM pg_terminate_backend(pid) ${sessions}; END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RAISE EXCEPTION 'sessions of role % (or other clients over the network) did not end within 5 s of web and worker stopping', ${literal(APP_DB_USER)};
END $$;`;
}

export async function waitForAppSessions(settings: Settings): Promise<void> {
  await psql(settings, appSessionsGoneSql(stackDatabase(settings)), undefined, {}, "postgres");
}
