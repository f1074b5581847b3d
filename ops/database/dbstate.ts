/**
 * The database's own state, which pg_restore leaves out unless it creates the database itself (`--create`,
 * impossible for a restore beside the live one under another name): `ALTER DATABASE … SET`, `ALTER ROLE … IN
 * DATABASE … SET`, the database's privileges, comment, connection limit and owner. A backup records them in
 * its manifest (read in the dump's snapshot); a restore applies them to the side database before the swap
 * (they belong to the database's OID, so they follow the rename); verify, drill and restore compare them, and
 * who owns which objects, with the manifest.
 */
import { APP_DB_USER, BACKUP_DB_USER } from "../../model/containers";
import { Settings } from "../../model/settings";
import { progress } from "../core/log";
import { DatabaseGrant, DatabaseState } from "../store/manifest";
import { ident, literal, psql } from "./postgres";
import { DatabaseServer } from "./server";

/** The settings pg_dump quotes as lists (its variable_is_guc_list_quote). */
const LIST_SETTINGS = new Set([
  "local_preload_libraries",
  "search_path",
  "session_preload_libraries",
  "shared_preload_libraries",
  "temp_tablespaces",
  "unix_socket_directories",
]);

/** A list setting's stored value (`"$user", public`) split as PostgreSQL's SplitGUCList does. */
export function splitSettingList(value: string): string[] {
  const items: string[] = [];
  let rest = value.trimStart();
  while (rest.length) {
    let item: string;
    if (rest.startsWith('"')) {
      const end = /^"((?:[^"]|"")*)"/.exec(rest);
      item = (end?.[1] ?? rest.slice(1)).replace(/""/g, '"');
      rest = rest.slice(end ? end[0].length : rest.length);
    } else {
      const comma = rest.indexOf(",");
      item = (comma < 0 ? rest : rest.slice(0, comma)).trimEnd();
      rest = comma < 0 ? "" : rest.slice(comma);
    }
    items.push(item);
    rest = rest.trimStart().replace(/^,/, "").trimStart();
  }
  return items;
}

/** `SET name TO value` for one stored `name=value`, as pg_dump writes it. */
export function setClause(entry: string): string {
  const at = entry.indexOf("=");
  const [name, value] = at < 0 ? [entry, ""] : [entry.slice(0, at), entry.slice(at + 1)];
  const values = LIST_SETTINGS.has(name.toLowerCase()) ? splitSettingList(value) : [value];
  return `SET ${ident(name)} TO ${(values.length ? values : [""]).map(literal).join(", ")}`;
}

function grantSql(database: string, grant: DatabaseGrant): string {
  return (
    `GRANT ${grant.privilege} ON DATABASE ${ident(database)} TO ${grant.grantee === null ? "PUBLIC" : ident(grant.grantee)}` +
    `${grant.grantable ? " WITH GRANT OPTION" : ""};`
  );
}

/**
 * SQL that gives `database` (a freshly created one) the recorded state. Grants by the owner first; a grant
 * by another role (one the owner let grant) is made as that role, so the grantor stays.
 */
export function applyDatabaseStateSql(state: DatabaseState, database: string): string {
  const db = ident(database);
  const lines = [
    `ALTER DATABASE ${db} OWNER TO ${ident(state.owner)};`,
    `ALTER DATABASE ${db} CONNECTION LIMIT ${Number(state.connectionLimit)};`,
    `COMMENT ON DATABASE ${db} IS ${state.comment === null ? "NULL" : literal(state.comment)};`,
    ...state.settings.map((entry) => `ALTER DATABASE ${db} ${setClause(entry)};`),
    ...Object.entries(state.roleSettings).flatMap(([role, entries]) =>
      entries.map((entry) => `ALTER ROLE ${ident(role)} IN DATABASE ${db} ${setClause(entry)};`),
    ),
  ];
  if (state.acl) {
    lines.push(
      `REVOKE ALL ON DATABASE ${db} FROM PUBLIC;`,
      `REVOKE ALL ON DATABASE ${db} FROM ${ident(state.owner)};`,
    );
    const byOwner = state.acl.filter((g) => g.grantor === state.owner);
    lines.push(...byOwner.map((g) => grantSql(database, g)));
    for (const grant of state.acl.filter((g) => g.grantor !== state.owner)) {
      lines.push(`SET ROLE ${ident(grant.grantor)};`, grantSql(database, grant), "RESET ROLE;");
    }
  }
  return lines.join("\n");
}

/** Creates (NOLOGIN) the roles of `roles` this server lacks; returns them. */
export async function createMissingRoles(
  settings: Settings,
  roles: readonly string[],
  server: DatabaseServer,
  why: string,
): Promise<string[]> {
  if (!roles.length) {
    return [];
  }
  const missing = await psql(
    settings,
    `SELECT r FROM unnest(ARRAY[${roles.map(literal).join(", ")}]::text[]) r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);`,
    server,
    {},
    "postgres",
  );
  for (const role of missing) {
    progress(`creating role ${role} (NOLOGIN): ${why}`);
    await psql(
      settings,
      `DO $$BEGIN CREATE ROLE ${ident(role)} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$;`,
      server,
      {},
      "postgres",
    );
  }
  return missing;
}

/** The database-level grants a restore gives itself, after its side check (appRole.ts appRightsSql). */
const RESTORE_GRANTEES: readonly (string | null)[] = [APP_DB_USER, BACKUP_DB_USER];

/** The ACL PostgreSQL means by NULL for a database of `owner` (`acldefault('d', owner)`), as keys. */
function defaultAclKeys(owner: string): string[] {
  return [
    [null, "TEMPORARY"],
    [null, "CONNECT"],
    [owner, "CREATE"],
    [owner, "TEMPORARY"],
    [owner, "CONNECT"],
  ]
    .map(([grantee, privilege]) =>
      grantKey({ grantee, grantor: owner, privilege: privilege!, grantable: false }),
    )
    .sort();
}

const grantKey = (g: DatabaseGrant) =>
  `${g.grantee ?? "PUBLIC"}|${g.grantor}|${g.privilege}|${g.grantable}`;

/**
 * The state without the CONNECT grants a restore gives the application and backup roles once its side check
 * passed, for the check after the swap: a backup from before those grants (its ACL NULL, or without the
 * backup role) would otherwise never pass it. An ACL left with exactly the owner's defaults is NULL again.
 */
export function withoutRestoreGrants(state: DatabaseState): DatabaseState {
  if (state.acl === null) {
    return state;
  }
  const acl = state.acl.filter(
    (g) =>
      !(g.privilege === "CONNECT" && g.grantee !== null && RESTORE_GRANTEES.includes(g.grantee)),
  );
  const isDefault =
    JSON.stringify(acl.map(grantKey).sort()) === JSON.stringify(defaultAclKeys(state.owner));
  return { ...state, acl: isDefault ? null : acl };
}

/** The state as `key → value` pairs, for compareMaps: each difference then names what differs. */
export function flattenDatabaseState(state: DatabaseState): Record<string, string | number> {
  const flat: Record<string, string | number> = {
    owner: state.owner,
    "connection limit": state.connectionLimit,
    comment: state.comment ?? "(none)",
  };
  if (state.acl === null) {
    flat.privileges = "default";
  }
  for (const g of state.acl ?? []) {
    flat[`privilege ${g.privilege} to ${g.grantee ?? "PUBLIC"} by ${g.grantor}`] = g.grantable
      ? "with grant option"
      : "granted";
  }
  const setting = (entry: string) => {
    const at = entry.indexOf("=");
    return at < 0 ? [entry, ""] : [entry.slice(0, at), entry.slice(at + 1)];
  };
  for (const entry of state.settings) {
    const [name, value] = setting(entry);
    flat[`setting ${name}`] = value;
  }
  for (const [role, entries] of Object.entries(state.roleSettings)) {
    for (const entry of entries) {
      const [name, value] = setting(entry);
      flat[`setting ${name} for ${role}`] = value;
    }
  }
  for (const [key, count] of Object.entries(state.owners)) {
    flat[key] = count;
  }
  return flat;
}
