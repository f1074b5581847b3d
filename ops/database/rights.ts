/**
 * The rights a restore needs on a server where edms-ops is not the superuser (a managed PostgreSQL's admin
 * role): it fills a database beside the live one (CREATEDB), renames both in one transaction (owner of the live
 * database, and CREATEDB), ends the sessions of the application's role first (pg_signal_backend) and works from
 * the maintenance database (CONNECT to `postgres`). Asked in one query before anything is changed, so a
 * restore that would fail halfway is refused up front, naming each missing right and the statement that
 * grants it.
 */
import { z } from "zod";
import { Settings } from "../../model/settings";
import { failure } from "../core/errors";
import { parseJson } from "../core/json";
import { ident, literal, MAINTENANCE_DATABASE, psql } from "./postgres";
import { DatabaseServer, serverName } from "./server";

const RightsSchema = z.object({
  role: z.string(),
  superuser: z.boolean(),
  createdb: z.boolean(),
  /** null: the database does not exist. */
  owner: z.boolean().nullable(),
  signal: z.boolean(),
  maintenance: z.boolean(),
});
export type Rights = z.infer<typeof RightsSchema>;

export const rightsSql = (database: string) => `SELECT json_build_object(
  'role', current_user,
  'superuser', r.rolsuper,
  'createdb', r.rolcreatedb,
  'owner', (SELECT pg_has_role(current_user, d.datdba, 'USAGE') FROM pg_database d WHERE d.datname = ${literal(database)}),
  'signal', pg_has_role(current_user, 'pg_signal_backend', 'USAGE'),
  'maintenance', EXISTS (SELECT 1 FROM pg_database m WHERE m.datname = ${literal(MAINTENANCE_DATABASE)} AND has_database_privilege(m.oid, 'CONNECT'))
)::text FROM pg_roles r WHERE r.rolname = current_user;`;

/** Each right a restore of `database` lacks, with the statement (run as the server's admin) that grants it. */
export function missingRestoreRights(rights: Rights, database: string): string[] {
  if (rights.superuser) {
    return [];
  }
  const role = ident(rights.role);
  const db = ident(database);
  return [
    ...(rights.owner === null
      ? [`database ${database}, which does not exist (CREATE DATABASE ${db} OWNER ${role};)`]
      : []),
    ...(rights.createdb
      ? []
      : [`CREATEDB, to create the database a restore fills (ALTER ROLE ${role} CREATEDB;)`]),
    ...(rights.owner === false
      ? [
          `ownership of database ${database}, to rename it in the swap (ALTER DATABASE ${db} OWNER TO ${role};)`,
        ]
      : []),
    ...(rights.signal
      ? []
      : [
          `pg_signal_backend, to end the application's sessions before the swap (GRANT pg_signal_backend TO ${role};)`,
        ]),
    ...(rights.maintenance
      ? []
      : [
          `CONNECT to database ${MAINTENANCE_DATABASE}, where the swap runs (GRANT CONNECT ON DATABASE ${MAINTENANCE_DATABASE} TO ${role};)`,
        ]),
  ];
}

export async function restoreRights(
  settings: Settings,
  server: DatabaseServer,
  database: string,
): Promise<Rights> {
  // Asked in the database itself: the maintenance database may be the right that is missing.
  const rows = await psql(settings, rightsSql(database), server, {}, database);
  return parseJson(rows.join("\n"), RightsSchema, "the role's rights from psql");
}

/** Refuses, before anything is changed, a restore the role connecting to `server` lacks the rights for. */
export async function requireRestoreRights(
  settings: Settings,
  server: DatabaseServer,
  database: string,
): Promise<void> {
  const rights = await restoreRights(settings, server, database);
  const missing = missingRestoreRights(rights, database);
  if (missing.length) {
    throw failure(
      `Role ${rights.role} on ${serverName(server)} cannot restore database ${database}: it lacks ${missing.join("; ")}.`,
      "Run the statements above as the server's admin (its provider's console), then retry. Nothing was changed.",
    );
  }
}
