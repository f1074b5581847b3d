/**
 * Paths, users and ports inside the stack's containers, shared by the program (which sets them) and edms-ops
 * (which execs into, copies into and starts containers that rely on them). No @pulumi import.
 */
import { djangoHttpsEnvironment } from "./https";
import { bucketMedia } from "./config/media";
import type { Settings } from "./settings";

/** Where secrets land inside containers; settings read them through `*_FILE` variables. */
export const SECRETS_DIR = "/run/secrets";
/** The cluster's superuser and the owner of the schema: migrations, bootstrap and every operation. */
export const POSTGRES_USER = "edms";
export const POSTGRES_DB = "edms";
/** The stack's database: `edms:database.name` on an external server, POSTGRES_DB in its own container. */
export function stackDatabase(settings: { readonly database?: { readonly name: string } }): string {
  return settings.database?.name ?? POSTGRES_DB;
}
/**
 * The role web and worker connect as: LOGIN, not a superuser, no CREATEDB/CREATEROLE, only reading and
 * writing rows of the schema `public` (ops/database/appRole.ts). An SQL injection in the app then cannot
 * change the schema, read the server's files or run programs (`COPY … TO PROGRAM`).
 */
export const APP_DB_USER = "edms_app";
/** Its password inside web and worker; the superuser's (`SUPERUSER_PASSWORD_FILE`) is never there. */
export const APP_DB_PASSWORD_FILE = `${SECRETS_DIR}/app_db_password`;
/**
 * The role scheduled backups dump the database as (the scheduler has no engine socket, so it cannot
 * `docker exec` the superuser's psql): LOGIN with `pg_read_all_data` and nothing else; it cannot write a
 * row. Its password reaches the scheduler as a pgpass file (`BACKUP_DB_PASSFILE`), never env.
 */
export const BACKUP_DB_USER = "edms_backup";
export const BACKUP_DB_PASSFILE = `${SECRETS_DIR}/backup_db.pgpass`;
/** The superuser's password, in postgres and edms-ops' one-off containers only. */
export const SUPERUSER_PASSWORD_FILE = `${SECRETS_DIR}/postgres_password`;
/**
 * The CA of an external database's server (`edms:database.caCertificateFile`) in web, worker and the one-off
 * containers: libpq reads it through PGSSLROOTCERT.
 */
export const DATABASE_CA_FILE = `${SECRETS_DIR}/database_ca.crt`;
/** Whether `sslMode` checks the server's certificate, so its clients need the CA file. */
export const sslModeVerifies = (sslMode: string) =>
  sslMode === "verify-ca" || sslMode === "verify-full";
/** A pgpass line's field: `:` and `\\` escaped (libpq). */
export const pgpassField = (value: string) => value.replace(/[\\:]/g, (c) => `\\${c}`);
/**
 * Bucket media's keys (`edms:media`) in web, worker and the one-off containers: boto3's credentials file,
 * found through AWS_SHARED_CREDENTIALS_FILE.
 */
export const S3_CREDENTIALS_FILE = `${SECRETS_DIR}/s3_credentials`;
/** The endpoint's CA (`edms:media.caCertificateFile`) there: EDMS_S3_CA_FILE and AWS_CA_BUNDLE name it. */
export const S3_CA_FILE = `${SECRETS_DIR}/s3_ca.crt`;
export const PGDATA = "/var/lib/postgresql/data";
export const MEDIA_ROOT = "/srv/media";

/** Redis' password, for the app (REDIS_PASSWORD_FILE) and for `redis-cli` inside the redis container. */
export const REDIS_PASSWORD_FILE = `${SECRETS_DIR}/redis_password`;
/** redis-server's config file (its first argument): `requirepass`, so the password is in no argv. */
export const REDIS_CONFIG_FILE = `${SECRETS_DIR}/redis.conf`;

export function redisConfig(password: string): string {
  return `requirepass ${password}\n`;
}

/**
 * `sh -c` script running `redis-cli "$@"` inside the redis container, authenticated through REDISCLI_AUTH
 * read from the password file: the password is in no argv, env of the container, or output.
 */
export const REDIS_CLI = `REDISCLI_AUTH="$(cat ${REDIS_PASSWORD_FILE})" exec redis-cli "$@"`;

/**
 * Who a Django process connects as: web and worker as the application role; the one-off containers edms-ops
 * starts (migrate, bootstrap, reset-app, the drill's release) as the schema's owner, the superuser.
 */
export type DatabaseRole = "app" | "owner";

/**
 * The environment every Django process of the stack gets: the long-running web and worker containers and
 * the one-off containers edms-ops starts (migrate, bootstrap). Secrets are only ever *paths*.
 */
export function djangoEnvironment(settings: Settings, role: DatabaseRole): string[] {
  return [
    "DJANGO_SETTINGS_MODULE=edms.settings",
    `EDMS_ENVIRONMENT=${settings.environment}`,
    `EDMS_VERSION=${settings.version}`,
    ...databaseEnvironment(settings),
    `POSTGRES_DB=${stackDatabase(settings)}`,
    ...(role === "app"
      ? [`POSTGRES_USER=${APP_DB_USER}`, `POSTGRES_PASSWORD_FILE=${APP_DB_PASSWORD_FILE}`]
      : [
          `POSTGRES_USER=${ownerRole(settings)}`,
          `POSTGRES_PASSWORD_FILE=${SUPERUSER_PASSWORD_FILE}`,
        ]),
    `DJANGO_SECRET_KEY_FILE=${SECRETS_DIR}/django_secret_key`,
    // The URL carries no password: the app adds the one in REDIS_PASSWORD_FILE.
    "REDIS_URL=redis://redis:6379/0",
    `REDIS_PASSWORD_FILE=${REDIS_PASSWORD_FILE}`,
    `MEDIA_ROOT=${MEDIA_ROOT}`,
    ...mediaEnvironment(settings),
    ...djangoHttpsEnvironment(settings),
  ];
}

/** The role migrations, bootstrap and edms-ops connect as: the stack's superuser, or the external server's admin. */
export function ownerRole(settings: Settings): string {
  return settings.database?.user ?? POSTGRES_USER;
}

/**
 * Where a Django process finds the server: the stack's postgres container by its alias, or the external
 * server with its port and TLS as libpq variables (psycopg reads them; Django passes no port of its own).
 */
function databaseEnvironment(settings: Settings): string[] {
  const database = settings.database;
  if (!database) {
    return ["POSTGRES_HOST=postgres"];
  }
  return [
    `POSTGRES_HOST=${database.host}`,
    `PGPORT=${database.port}`,
    `PGSSLMODE=${database.sslMode}`,
    ...(sslModeVerifies(database.sslMode) ? [`PGSSLROOTCERT=${DATABASE_CA_FILE}`] : []),
  ];
}

/** Where the app's storage keeps uploads: the bucket's prefix (django-storages) when `edms:media` says so. */
function mediaEnvironment(settings: Settings): string[] {
  const media = bucketMedia(settings);
  if (!media) {
    return [];
  }
  return [
    "EDMS_MEDIA_BACKEND=s3",
    `EDMS_S3_BUCKET=${media.bucket}`,
    `EDMS_S3_ENDPOINT=${media.endpoint.replace(/\/$/, "")}`,
    `EDMS_S3_REGION=${media.region}`,
    `EDMS_S3_PREFIX=${media.prefix}`,
    `AWS_SHARED_CREDENTIALS_FILE=${S3_CREDENTIALS_FILE}`,
    // The sample app's AWS_S3_VERIFY reads EDMS_S3_CA_FILE; boto3 alone (verify left to it) AWS_CA_BUNDLE.
    ...(media.caCertificateFile
      ? [`EDMS_S3_CA_FILE=${S3_CA_FILE}`, `AWS_CA_BUNDLE=${S3_CA_FILE}`]
      : []),
  ];
}

/** The scheduler image's edms-ops (images/scheduler/Dockerfile): `docker exec` runs it for `alerts test`. */
export const SCHEDULER_OPS_ENTRY = ["node", "/opt/edms-ops/edms-ops.cjs"] as const;

/**
 * Alert targets (`edms:alerts`) inside the scheduler container, uploaded root-only by the program: Apprise's
 * text config (one URL per line, read with `apprise --config`) and the webhook's URL. Never env or argv.
 */
export const ALERT_TARGET_FILES = {
  apprise: `${SECRETS_DIR}/edms-alerts/apprise.txt`,
  webhook: `${SECRETS_DIR}/edms-alerts/webhook`,
} as const;

/**
 * Where edms-ops' containers (the lock container, the toolboxes, the scheduler) have the backups volume, the
 * media and the stage of a backup's dump: restic records these paths in every snapshot, so they never change.
 */
export const OPS_PATHS = {
  backups: "/backups",
  media: "/edms/media",
  stage: "/edms/database",
  /** Bucket media (`edms:media`): rclone's config with the bucket's key (the media credentials volume). */
  mediaCredentials: "/edms/media-credentials",
} as const;

/** The scheduler image's rclone for bucket media (images/scheduler/Dockerfile copies it from `edms:media.image`). */
export const SCHEDULER_RCLONE = "/opt/edms-ops/bin/rclone";

/** EDMS_MOUNTS of a container without the engine (ops/engine/engineless.ts): volume → where it is mounted. */
export type LocalMounts = Record<string, { readonly path: string; readonly readOnly?: boolean }>;
