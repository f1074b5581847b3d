/**
 * When the stack's database was made: a fresh start's evidence (ops/backup/emptyDatabase.ts). For the stack's
 * own server, its cluster's initdb; for an external one, when `reset` last emptied it.
 */
import { Settings } from "../../model/settings";
import { literal, psql } from "./postgres";

/**
 * When the database cluster was made (initdb), in ms; null when the server does not say. PostgreSQL builds
 * its system identifier from the initdb time (seconds in the high 32 bits), so this survives restarts, a
 * restore (swapped in within the same cluster) and anything Docker does to the volume's directory, whose
 * `CreatedAt` Docker reads from the filesystem: it moved to after the deployments recorded onto the volume when
 * the postgres container was stopped and started again (fault 6i).
 */
export async function clusterCreated(settings: Settings): Promise<number | null> {
  if (settings.database) {
    return externalDatabaseEmptied(settings);
  }
  const [seconds] = await psql(
    settings,
    "SELECT system_identifier >> 32 FROM pg_control_system();",
    undefined,
    { allowFailure: true },
  );
  const value = Number(seconds);
  return seconds !== undefined && Number.isSafeInteger(value) && value > 0 ? value * 1000 : null;
}

/**
 * An external database's own "cluster made": when `reset` last emptied it, from the comment it leaves on
 * schema `public` (the server's initdb says nothing of the database, and pg_control_system() is often not the
 * admin's to call). It travels with the database: a restore brings back the backup's own.
 */
export const RESET_COMMENT = "edms-ops reset";

async function externalDatabaseEmptied(settings: Settings): Promise<number | null> {
  const [comment] = await psql(
    settings,
    "SELECT coalesce(obj_description(to_regnamespace('public'), 'pg_namespace'), '');",
    undefined,
    { allowFailure: true },
  );
  const at = new RegExp(`^${RESET_COMMENT} (\\S+)$`).exec(comment ?? "")?.[1];
  const ms = at ? Date.parse(at) : NaN;
  return Number.isFinite(ms) ? ms : null;
}

/**
 * Empties what the admin owns in an external database (`reset`): every schema it owns (or, as the database's
 * owner, `public` of pg_database_owner) with all in it, and its large objects; then an empty `public` as a
 * new database has it, marked with the time (RESET_COMMENT). Schemas of other roles, the roles, the
 * database itself and the server are left alone.
 */
export const emptyExternalDatabaseSql = (now: string) =>
  [
    "DO $$ DECLARE s record; BEGIN",
    "  FOR s IN SELECT n.nspname FROM pg_namespace n WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'",
    "    AND pg_has_role(current_user, n.nspowner, 'USAGE') LOOP",
    "    EXECUTE format('DROP SCHEMA %I CASCADE', s.nspname);",
    "  END LOOP;",
    "END $$;",
    "SELECT lo_unlink(l.oid) FROM pg_largeobject_metadata l WHERE pg_has_role(current_user, l.lomowner, 'USAGE');",
    "CREATE SCHEMA IF NOT EXISTS public;",
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_database_owner') THEN ALTER SCHEMA public OWNER TO pg_database_owner; END IF; END $$;",
    "GRANT USAGE ON SCHEMA public TO PUBLIC;",
    `COMMENT ON SCHEMA public IS ${literal(`${RESET_COMMENT} ${now}`)};`,
  ].join("\n");
