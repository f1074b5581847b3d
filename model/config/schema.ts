/**
 * The one source of every `edms:*` key: its schema (type and checks), its default and its description.
 * Validation (validate.ts), the `Settings` type, Pulumi.yaml's `config:` block and docs/settings.md
 * (both written by `npm run docs`) all come from here.
 */
import { z } from "zod";
import { ALERTS_FIX, alertsSchema } from "./alerts";
import { BACKUP_FIX, backupSchema } from "./backup";
import { ENVIRONMENTS, Environment } from "./environments";
import { integer, nonEmpty, pemFile, port, setting } from "./fields";
import { databaseSchema, DATABASE_FIX } from "./database";
import { mediaSchema, MEDIA_FIX } from "./media";
import { bindAddressSchema, djangoSchema, tlsUpstreamSchema } from "./https";
import { LIMITS_FIX, limitsSchema } from "./limits";
import { HOOK_WAIT_SECONDS } from "../hooks";

export const DEFAULTS = {
  backendImage: "edms-sample/backend",
  postgresImage: "postgres:16",
  redisImage: "redis:7",
  namePrefix: "edms",
  dataGeneration: 0,
  httpPort: 8000,
  bootstrap: {
    superuser: "admin",
    email: "admin@localhost",
    fixtures: ["initial_users", "initial_settings"],
  },
  proxy: { enabled: true, image: "haproxy:2.8" },
} as const;

/** Where TLS ends when `edms:proxy.tls` leaves out its port. */
export const DEFAULT_TLS_PORT = 443;

const bootstrap = z
  .object({
    superuser: setting(nonEmpty("a user name").default(DEFAULTS.bootstrap.superuser), {
      description: "User name of the superuser created in a new database.",
    }),
    email: setting(
      z.string().email("email must be an e-mail address").default(DEFAULTS.bootstrap.email),
      { description: "E-mail address of that superuser." },
    ),
    fixtures: setting(
      z
        .array(
          z
            .string({ error: "fixtures must all be strings" })
            .min(1)
            .refine(
              (v) => !v.startsWith("-"),
              "fixtures: a fixture name may not begin with `-` (manage.py loaddata would take it as an option)",
            ),
          {
            error: "fixtures must be a list of fixture names",
          },
        )
        .default([...DEFAULTS.bootstrap.fixtures]),
      { description: "Django fixtures loaded once, only into a database with no users." },
    ),
  })
  .strict();

const tls = z
  .object({
    port: setting(port.optional(), {
      description: `Host port the proxy publishes for HTTPS (default ${DEFAULT_TLS_PORT}); must differ from \`edms:httpPort\`.`,
    }),
    certificateFile: setting(pemFile("tls.certificateFile"), {
      description: "PEM certificate chain, path relative to the project directory.",
    }),
    keyFile: setting(pemFile("tls.keyFile"), {
      description:
        "PEM private key, path relative to the project directory; uploaded into the proxy as a secret file.",
    }),
  })
  .strict()
  // Not `.default()` on `port`: a port left out goes last, where Settings JSON has always had it (the
  // scheduler container's env holds that JSON, and a reordered key would replace the container).
  .transform((t) => ({ ...t, port: t.port ?? DEFAULT_TLS_PORT }));

const proxy = z
  .object({
    enabled: setting(
      z.boolean({ error: "enabled must be true or false" }).default(DEFAULTS.proxy.enabled),
      {
        description:
          "A reverse proxy owns `edms:httpPort`; web containers are per release. Off: one fixed web publishes it.",
      },
    ),
    image: setting(nonEmpty("an image reference").default(DEFAULTS.proxy.image), {
      description:
        "HAProxy image honouring the official image's layout (`/usr/local/etc/haproxy`).",
    }),
    tls: setting(tls.optional(), {
      description:
        "TLS termination at the proxy: `{port, certificateFile, keyFile}`. Certificate and key are files on the deploying machine, never config values. Needs `enabled`; excludes `edms:tlsUpstream`. `edms:httpPort` then only redirects to HTTPS.",
    }),
  })
  .strict();

/** The keys with one value each; their order is the order of Settings JSON (the scheduler's env). */
const scalarKeys = {
  environment: setting(
    z.enum(ENVIRONMENTS, { error: `must be one of ${ENVIRONMENTS.join(", ")}` }),
    {
      description:
        "dev | staging | production. Decides protection and which defaults and rules apply.",
      production:
        "the postgres, media and backups volumes are protected and retained on delete; their data is never reinitialised",
      fix: "set it with `pulumi config set edms:environment dev|staging|production`",
    },
  ),
  version: setting(
    nonEmpty("a release tag").regex(
      /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/,
      "must be a valid image tag",
    ),
    {
      description:
        "Release tag of the backend image to deploy (`<backendImage>:<version>`); keys the pre-deploy backup and migrate hooks.",
      fix: "set the release to deploy, e.g. `pulumi config set edms:version 2.0.0`",
    },
  ),
  backendImage: setting(nonEmpty("an image repository").default(DEFAULTS.backendImage), {
    description: "Image repository of the Django backend (web and worker).",
    fix: "e.g. `edms-sample/backend`",
  }),
  releaseDigest: setting(
    z
      .string({ error: "must be an image digest" })
      .trim()
      .regex(/^sha256:[0-9a-f]{64}$/, "must be `sha256:` and 64 lowercase hex digits")
      .optional(),
    {
      description:
        "Registry digest of `<backendImage>:<version>`: web, worker and edms-ops then run `<backendImage>:<version>@<digest>`, which the registry cannot swap under the tag. Find it with `docker buildx imagetools inspect <backendImage>:<version>`. Set it with every new `edms:version` (`edms-ops rollback` sets the target's recorded one). On production the policy `production-images-by-digest` refuses the release without it.",
      fix: "e.g. `pulumi config set edms:releaseDigest sha256:<64 hex>`; find it with `docker buildx imagetools inspect <backendImage>:<version>`",
    },
  ),
  postgresImage: setting(nonEmpty("an image reference").default(DEFAULTS.postgresImage), {
    description:
      "PostgreSQL image; any image honouring the official image's env contract (POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE, PGDATA).",
    fix: "e.g. `postgres:16`",
  }),
  redisImage: setting(nonEmpty("an image reference").default(DEFAULTS.redisImage), {
    description: "Redis image (cache and celery broker).",
    fix: "e.g. `redis:7`",
  }),
  namePrefix: setting(
    z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,39}$/, "must match [a-z][a-z0-9-]* (at most 40 characters)")
      .default(DEFAULTS.namePrefix),
    {
      description:
        "Prefix of every Docker name: volumes <prefix>_postgres_data, <prefix>_redis_data, <prefix>_media_files, <prefix>_backups; containers <prefix>-web etc. Pattern [a-z][a-z0-9-]*. Fixed once the stack has data on its host: Docker cannot rename a volume, so a deploy with another prefix while the stack's database, media or backups volumes carry the old one is refused before anything changes (see \"Renaming a stack's prefix\" in operations.md).",
      fix: "use lowercase letters, digits and dashes, starting with a letter, e.g. `edms`",
    },
  ),
  dataGeneration: setting(
    integer.pipe(z.number().int().min(0, "must be 0 or more")).default(DEFAULTS.dataGeneration),
    {
      description: "dev/staging only. Bump to start on fresh data volumes (suffix _g<N>).",
      fix: "use a whole number ≥ 0; bump it to start dev/staging on fresh data",
      production: "not allowed, even `0`: production data is never reinitialised",
    },
  ),
  httpPort: setting(port.default(DEFAULTS.httpPort), {
    description:
      "Host port the proxy (or, with edms:proxy.enabled false, the web container) publishes (1-65535). PostgreSQL and Redis are never published.",
    fix: "choose a port between 1 and 65535, e.g. 8000",
  }),
  bindAddress: bindAddressSchema,
  tlsUpstream: tlsUpstreamSchema,
  // No default: a stack that leaves it out keeps its Settings JSON and its hooks' argv as they were.
  healthWaitSeconds: setting(
    integer
      .pipe(z.number().int().min(10, "must be 10 or more").max(3600, "must be 3600 or less"))
      .optional(),
    {
      description: `Seconds a new release's web has to answer \`/health/\` 200 before the proxy switch (and the health gate) stop the deploy with the old release serving (default ${HOOK_WAIT_SECONDS}). Raise it for an app that starts slowly.`,
      fix: "use a whole number of seconds from 10 to 3600, e.g. 300",
    },
  ),
};

function buildSchema(environment: Environment) {
  return z.object({
    ...scalarKeys,
    backup: setting(backupSchema(environment).prefault({}), {
      description:
        "{beforeDeploy: bool, drillBeforeDeploy: bool, schedule: cron|off, keep: int >= 1, keepDaily/keepWeekly/keepMonthly: int >= 0, image: restic image, schedulerImage, offsite: {repository, env}, rpo, drillScratch: /host/dir}. Backups are restic snapshots in <prefix>_backups; keep = newest kept; keepDaily/keepWeekly/keepMonthly also keep the newest backup of each of the last N days/ISO weeks/months, as restic forget --keep-daily/--keep-weekly/--keep-monthly (rollback targets are kept on top). drillBeforeDeploy: the pre-deploy backup is restored into scratch space and checked by its release before migrate (edms-ops drill); needs beforeDeploy. schedule: when the scheduler container on the Docker host runs `edms-ops backup --reason scheduled` (same retention and off-host copy), a cron expression in UTC: 5 fields, 6 with seconds first, or @hourly/@daily/...; `off` turns it off. schedulerImage (node >= 20: its /usr/local/bin/node is copied) is, with edms:postgresImage (the base: pg_dump of the server's major) and image (restic), what the scheduler image is built from on the Docker host; it has no engine socket. offsite: any restic repository URL (s3:, sftp:, rest:, b2:, azure:, gs:, rclone:) and backend variables; set them with `pulumi config set --secret --path edms:backup.offsite.repository ...`. rpo: the scheduler alerts (edms:alerts) when the newest good backup is older than this (`6h`, `30m`, `2d`, `off`). drillScratch: a directory on the Docker host for the drill's scratch copy of database and media (default: Docker's data root); a drill is refused up front when it has no room.",
      fix: BACKUP_FIX,
    }),
    bootstrap: setting(bootstrap.prefault({}), {
      description: "{superuser, email, fixtures}, applied once to a new database.",
      fix: "e.g. `{superuser: admin, email: admin@example.com, fixtures: [initial_users, initial_settings]}`",
    }),
    proxy: setting(proxy.prefault({}), {
      description: `{enabled: bool, image, tls?: {port (default ${DEFAULT_TLS_PORT}), certificateFile, keyFile}}. A reverse proxy (HAProxy) owns edms:httpPort and switches to a new release's web only once it is healthy (zero-downtime update and rollback). enabled false: one fixed web container publishes the port and is replaced delete-first. TLS certificate and key are PEM files next to the stack, uploaded into the proxy as files (never env or config text); with tls, the plain edms:httpPort answers every request with a redirect to HTTPS. Production needs tls or edms:tlsUpstream.`,
      fix: "e.g. `{enabled: true, image: haproxy:2.8, tls: {port: 443, certificateFile: certs/edms.crt, keyFile: certs/edms.key}}`",
    }),
    django: djangoSchema,
    alerts: setting(alertsSchema.prefault({}), {
      description:
        "{apprise?: [url, …], webhook?: url, offsiteLagBackups: int >= 1, offsiteLagHours: number > 0}. Where the scheduler on the Docker host sends alerts: a scheduled backup failed, skipped or missed; the off-host copy lags more than offsiteLagBackups backups or offsiteLagHours hours; the latest drill failed; a restore is incomplete; the newest good backup is older than edms:backup.rpo. One message when a condition starts, a reminder at most daily while it lasts, one when it clears. Target URLs carry tokens: set each with `pulumi config set --secret --path`; plain text is refused. They reach the scheduler as root-only files, never env or argv. Needs edms:backup.schedule (the scheduler sends them).",
      fix: ALERTS_FIX,
    }),
    database: setting(databaseSchema.optional(), {
      description:
        "{host, port (default 5432), name (default edms), user, password (secret), sslMode (default verify-full), caCertificateFile, network?}. An external PostgreSQL (managed or a dedicated server) instead of the stack's postgres container: the program then creates no postgres container or volume; web, worker and every hook connect over the network with TLS as sslMode asks, credentials as files. The database is `name` (default `edms`), owned by `user`, which needs CREATEDB and CREATEROLE (it creates the app's roles) and never superuser. Production needs sslMode verify-full. reset empties the schemas `user` owns, never the server; `edms:dataGeneration` is refused.",
      fix: DATABASE_FIX,
    }),
    media: setting(mediaSchema.optional(), {
      description:
        "{backend: s3, bucket, endpoint, region (default us-east-1), prefix (default edms:namePrefix), accessKeyId, secretAccessKey (secret), network?, image?}. Media in an S3-compatible bucket instead of the media volume: web and worker store uploads there through django-storages, with the keys as a file. Backups copy the prefix into the media volume (a mirror: only new or changed objects are fetched) and back that up; a restore brings the prefix back exactly (changed, deleted and added objects too); a drill never touches the bucket; a staging reset empties the prefix, never the bucket. image: the rclone image edms-ops copies with (default rclone/rclone). Production needs an https endpoint.",
      fix: MEDIA_FIX,
    }),
    limits: setting(limitsSchema.prefault({}), {
      description:
        "{postgres|redis|web|worker|proxy|scheduler|helpers: {memoryMb: int >= 64, pids: int >= 16}}. Memory (swap included, so a container never swaps) and process limits per container; helpers are the containers edms-ops starts (backups, restores, drills, migrations). pids applies to edms-ops' containers only: the Docker provider (@pulumi/docker 5.x) has no pids limit for the stack's services.",
      fix: LIMITS_FIX,
    }),
  });
}

export type SettingsSchema = ReturnType<typeof buildSchema>;

const schemas = new Map<Environment, SettingsSchema>();

/** The schema of a stack of `environment`: only `edms:backup`'s defaults depend on it. */
export function settingsSchema(environment: Environment): SettingsSchema {
  let schema = schemas.get(environment);
  if (!schema) {
    schema = buildSchema(environment);
    schemas.set(environment, schema);
  }
  return schema;
}

/**
 * Keys Pulumi reads itself and `validateSettings` never sees: the program asks for them with
 * `config.getSecret`. Declared here so Pulumi.yaml and the reference list them with the rest.
 */
export const SECRET_SETTINGS = {
  superuserPassword: setting(z.string(), {
    description:
      "Password of the bootstrap superuser. Generated (@pulumi/random) when unset; exported as a secret output.",
    secret: true,
  }),
};

/** Every `edms:*` key a stack may set, without the namespace. */
export const KNOWN_KEYS: string[] = [
  ...Object.keys(settingsSchema("dev").shape),
  ...Object.keys(SECRET_SETTINGS),
];

/** What `edms:backup` is on a stack of `environment` that leaves it out. */
export function defaultBackup(environment: Environment): z.output<SettingsSchema>["backup"] {
  return settingsSchema(environment).shape.backup.parse(undefined);
}
