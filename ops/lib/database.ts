/**
 * Queries through `docker exec` in the postgres container, over its local socket: works without knowing
 * the database password, so operator commands never need a secret.
 */
import { POSTGRES_DB, POSTGRES_USER } from "../../model/containers";
import { Settings } from "../../model/settings";
import { docker, inspectContainer, RunOptions } from "./docker";
import { OpsError } from "./errors";

export async function requirePostgres(settings: Settings): Promise<void> {
  const state = await inspectContainer(settings.names.postgresContainer);
  if (!state.running) {
    throw new OpsError(
      `PostgreSQL container ${settings.names.postgresContainer} is ${state.exists ? "not running" : "missing"}. ` +
        `Deploy the stack first (npm run up -- --stack ${settings.stack}) or start it with \`docker start ${settings.names.postgresContainer}\`.`,
    );
  }
}

/** `psql` in the postgres container: unaligned, tab-separated, stop on the first error. */
export function psqlArgs(container: string): string[] {
  return [
    "exec",
    "-i",
    container,
    "psql",
    "-U",
    POSTGRES_USER,
    "-d",
    POSTGRES_DB,
    "-X",
    "-q",
    "-At",
    "-F",
    "\t",
    "-v",
    "ON_ERROR_STOP=1",
  ];
}

export const TABLES_SQL =
  "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename;";
export const MIGRATIONS_SQL =
  "SELECT app, max(name) FROM django_migrations GROUP BY app ORDER BY app;";

/** One query counting every given table. */
export function countsSql(tables: readonly string[]): string {
  return tables.map((t) => `SELECT '${t}', count(*) FROM public."${t}"`).join(" UNION ALL ") + ";";
}

export function parseCounts(rows: readonly string[]): Record<string, number> {
  return Object.fromEntries(
    rows.map((row) => row.split("\t")).map(([table, count]) => [table, Number(count)]),
  );
}

export function parseMigrations(rows: readonly string[]): Record<string, string> {
  return Object.fromEntries(rows.map((row) => row.split("\t")));
}

export async function psql(
  settings: Settings,
  sql: string,
  container = settings.names.postgresContainer,
  options: RunOptions = {},
): Promise<string[]> {
  const result = await docker(psqlArgs(container), { input: sql, ...options });
  return result.stdout.split("\n").filter((line) => line.length > 0);
}

export async function hasSchema(settings: Settings, container?: string): Promise<boolean> {
  const [value] = await psql(
    settings,
    "SELECT to_regclass('public.django_migrations') IS NOT NULL;",
    container,
  );
  return value === "t";
}

/** Row count of every table in the public schema: the integrity fingerprint of a backup. */
export async function tableCounts(
  settings: Settings,
  container?: string,
): Promise<Record<string, number>> {
  const tables = await psql(settings, TABLES_SQL, container);
  return tables.length ? parseCounts(await psql(settings, countsSql(tables), container)) : {};
}

/** Latest applied migration per Django app (`{documents: "0002_document_slug"}`). */
export async function migrationState(
  settings: Settings,
  container?: string,
): Promise<Record<string, string>> {
  if (!(await hasSchema(settings, container))) {
    return {};
  }
  return parseMigrations(await psql(settings, MIGRATIONS_SQL, container));
}

export async function countOf(settings: Settings, table: string): Promise<number | undefined> {
  const [exists] = await psql(settings, `SELECT to_regclass('public.${table}') IS NOT NULL;`);
  if (exists !== "t") {
    return undefined;
  }
  const [count] = await psql(settings, `SELECT count(*) FROM public.${table};`);
  return Number(count);
}
