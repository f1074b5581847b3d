/**
 * The stack settings: schema, defaults, validation and the names derived from them. No @pulumi import, so
 * the program (components/config.ts reads pulumi.Config and calls this), the edms-ops CLI (which reads
 * `Pulumi.<stack>.yaml` without the Pulumi CLI) and the tests apply exactly the same rules.
 */
import { z } from "zod";
import { DEFAULT_SCHEDULES, SCHEDULE_OFF, scheduleProblem } from "./schedule";

export const ENVIRONMENTS = ["dev", "staging", "production"] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

export interface OffsiteSettings {
  /**
   * Where off-host copies go, for display only: the repository URL with any user:password removed, or
   * `(secret)` when the stack file holds it encrypted. The URL and credentials themselves never enter
   * Settings (which travel as plain JSON); see `BackupSecrets`.
   */
  readonly display: string;
}

export interface BackupSettings {
  /** Take `edms-ops backup --reason pre-deploy` before migrating. Always true on production. */
  readonly beforeDeploy: boolean;
  /**
   * Drill the pre-deploy backup (`edms-ops drill`: scratch restore, the release's checks) before `migrate`.
   * Defaults to true on production, where it cannot be turned off; needs `beforeDeploy`.
   */
  readonly drillBeforeDeploy: boolean;
  /** Newest backups kept by the retention policy (rollback targets are kept on top). */
  readonly keep: number;
  /** On top of `keep`: restic's `--keep-daily`/`--keep-weekly`/`--keep-monthly` (newest per day/ISO week/month). */
  readonly keepDaily?: number;
  readonly keepWeekly?: number;
  readonly keepMonthly?: number;
  /** Image with `restic` and a POSIX shell, run on the Docker host. Defaults to `restic/restic:0.17.3`. */
  readonly image: string;
  /**
   * When the scheduler container on the Docker host backs up (`--reason scheduled`): a cron expression in
   * UTC (5 fields, or 6 with seconds first, or `@daily`…), or `off`. Defaults: production every 6 hours
   * (cannot be off), staging `@daily`, dev `off`.
   */
  readonly schedule: string;
  /** Base of the scheduler's image: node ≥ 20. Defaults to `node:20-bookworm-slim`. */
  readonly schedulerImage: string;
  /** Image whose `/usr/local/bin/docker` (a static docker CLI) the scheduler's image copies. Defaults to `docker:27-cli`. */
  readonly dockerCliImage: string;
  /** A second restic repository (any backend) that every backup is copied to. */
  readonly offsite?: OffsiteSettings;
}

/** Credentials of the off-host repository, as plain values: only ever handed to Pulumi as secrets. */
export interface BackupSecrets {
  readonly repository: string;
  /** Backend variables, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for `s3:`. */
  readonly env: Record<string, string>;
}

export interface BootstrapSettings {
  readonly superuser: string;
  readonly email: string;
  /** Loaded once, only into a database with no users. */
  readonly fixtures: readonly string[];
}

/** TLS termination at the proxy; certificate and key are files on the deploying machine, never config values. */
export interface ProxyTlsSettings {
  /** Host port the proxy publishes for HTTPS. */
  readonly port: number;
  /** PEM certificate chain, path relative to the project directory. */
  readonly certificateFile: string;
  /** PEM private key, path relative to the project directory; uploaded into the proxy as a secret file. */
  readonly keyFile: string;
}

export interface ProxySettings {
  /** A reverse proxy owns `edms:httpPort`; web containers are per release. Off: one fixed web publishes it. */
  readonly enabled: boolean;
  /** HAProxy image honouring the official image's layout (`/usr/local/etc/haproxy`). */
  readonly image: string;
  readonly tls?: ProxyTlsSettings;
}

/** Fixed names of everything the stack owns on the Docker host; edms-ops finds resources by them. */
export interface ResourceNames {
  readonly postgresVolume: string;
  readonly redisVolume: string;
  readonly mediaVolume: string;
  readonly backupsVolume: string;
  readonly network: string;
  readonly postgresContainer: string;
  readonly redisContainer: string;
  readonly webContainer: string;
  readonly workerContainer: string;
  readonly proxyContainer: string;
  /** Runs `edms-ops scheduler`: the scheduled backups (`edms:backup.schedule`). */
  readonly schedulerContainer: string;
}

export interface Settings {
  readonly stack: string;
  readonly environment: Environment;
  readonly version: string;
  readonly backendImage: string;
  readonly postgresImage: string;
  readonly redisImage: string;
  readonly namePrefix: string;
  readonly dataGeneration: number;
  readonly httpPort: number;
  readonly backup: BackupSettings;
  readonly bootstrap: BootstrapSettings;
  readonly proxy: ProxySettings;
  /** `docker:host`; undefined means the local socket (or `DOCKER_HOST`). */
  readonly dockerHost?: string;
  readonly names: ResourceNames;
}

/** Config values as read from the stack, keys without the `edms:` namespace. Values are untrusted. */
export type RawConfig = Record<string, unknown>;

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

export const DEFAULT_BACKUP_IMAGE = "restic/restic:0.17.3";
/** Official images; the scheduler's image is built from them on the Docker host (images/scheduler/Dockerfile). */
export const DEFAULT_SCHEDULER_IMAGE = "node:20-bookworm-slim";
export const DEFAULT_DOCKER_CLI_IMAGE = "docker:27-cli";

export function defaultBackup(environment: Environment): BackupSettings {
  const images = {
    image: DEFAULT_BACKUP_IMAGE,
    schedule: DEFAULT_SCHEDULES[environment],
    schedulerImage: DEFAULT_SCHEDULER_IMAGE,
    dockerCliImage: DEFAULT_DOCKER_CLI_IMAGE,
  };
  return environment === "production"
    ? { beforeDeploy: true, drillBeforeDeploy: true, keep: 14, ...images }
    : { beforeDeploy: false, drillBeforeDeploy: false, keep: 5, ...images };
}

/** restic's backends (`restic init --help`), or an absolute path on the Docker host. */
const RESTIC_REPOSITORY = /^(\/|(s3|sftp|rest|b2|azure|gs|swift|rclone):)/;

/** A value from the stack file that Pulumi keeps encrypted: `{secure: "v1:..."}`. */
const encrypted = z.object({ secure: z.string() }).strict();
const maybeSecret = (what: string) =>
  z.union([z.string({ error: `must be ${what}` }).min(1, `must be ${what}`), encrypted], {
    error: `must be ${what}`,
  });

/** The repository URL without `user:password@` and without a query string, for status lines. */
export function redactRepository(repository: string): string {
  // Up to the last @ before the path: restic allows @ in the password itself.
  return repository.replace(/\/\/[^/]*@/, "//").replace(/\?.*$/, "");
}

export function resourceNames(namePrefix: string, dataGeneration: number): ResourceNames {
  // A generation bump gives the data volumes new names, so the next deploy starts on empty ones. The
  // backups volume deliberately keeps its name: it holds the undo of that fresh start.
  const gen = dataGeneration > 0 ? `_g${dataGeneration}` : "";
  return {
    postgresVolume: `${namePrefix}_postgres_data${gen}`,
    redisVolume: `${namePrefix}_redis_data${gen}`,
    mediaVolume: `${namePrefix}_media_files${gen}`,
    backupsVolume: `${namePrefix}_backups`,
    network: `${namePrefix}-internal`,
    postgresContainer: `${namePrefix}-postgres`,
    redisContainer: `${namePrefix}-redis`,
    webContainer: `${namePrefix}-web`,
    workerContainer: `${namePrefix}-worker`,
    proxyContainer: `${namePrefix}-proxy`,
    schedulerContainer: `${namePrefix}-scheduler`,
  };
}

export const KNOWN_KEYS = [
  "environment",
  "version",
  "backendImage",
  "postgresImage",
  "redisImage",
  "namePrefix",
  "dataGeneration",
  "httpPort",
  "backup",
  "bootstrap",
  "proxy",
  "superuserPassword",
];

const nonEmpty = (what: string) =>
  z
    .string({ error: `must be ${what}` })
    .trim()
    .min(1, `must be ${what}`);
// Pulumi config values arrive as strings unless the stack file holds a YAML number.
const integer = z.union(
  [
    z.number(),
    z
      .string()
      .regex(/^-?\d+$/)
      .transform(Number),
  ],
  {
    error: "must be a whole number",
  },
);

const port = integer.pipe(z.number().int().min(1, "must be 1–65535").max(65535, "must be 1–65535"));
const pemFile = (what: string) =>
  z
    .string({ error: `${what} must be a file path` })
    .trim()
    .min(1, `${what} must be a file path`)
    .refine(
      (p) => !p.includes("-----BEGIN"),
      `${what} must be a file path, not the PEM text itself`,
    );

/** One check per key: a schema plus the fix shown to the operator when it fails. */
const RULES: Record<string, { schema: z.ZodType; fix: string }> = {
  environment: {
    schema: z.enum(ENVIRONMENTS, { error: `must be one of ${ENVIRONMENTS.join(", ")}` }),
    fix: "set it with `pulumi config set edms:environment dev|staging|production`",
  },
  version: {
    schema: nonEmpty("a release tag").regex(
      /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/,
      "must be a valid image tag",
    ),
    fix: "set the release to deploy, e.g. `pulumi config set edms:version 2.0.0`",
  },
  backendImage: { schema: nonEmpty("an image repository"), fix: "e.g. `edms-sample/backend`" },
  postgresImage: { schema: nonEmpty("an image reference"), fix: "e.g. `postgres:16`" },
  redisImage: { schema: nonEmpty("an image reference"), fix: "e.g. `redis:7`" },
  namePrefix: {
    schema: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,39}$/, "must match [a-z][a-z0-9-]* (at most 40 characters)"),
    fix: "use lowercase letters, digits and dashes, starting with a letter, e.g. `edms`",
  },
  dataGeneration: {
    schema: integer.pipe(z.number().int().min(0, "must be 0 or more")),
    fix: "use a whole number ≥ 0; bump it to start dev/staging on fresh data",
  },
  httpPort: {
    schema: integer.pipe(z.number().int().min(1, "must be 1–65535").max(65535, "must be 1–65535")),
    fix: "choose a port between 1 and 65535, e.g. 8000",
  },
  backup: {
    schema: z
      .object({
        beforeDeploy: z.boolean({ error: "beforeDeploy must be true or false" }).optional(),
        drillBeforeDeploy: z
          .boolean({ error: "drillBeforeDeploy must be true or false" })
          .optional(),
        keep: integer.pipe(z.number().int().min(1, "keep must be at least 1")).optional(),
        ...Object.fromEntries(
          ["keepDaily", "keepWeekly", "keepMonthly"].map((k) => [
            k,
            integer.pipe(z.number().int().min(0, `${k} must be 0 or more`)).optional(),
          ]),
        ),
        image: z
          .string({ error: "image must be an image reference" })
          .trim()
          .min(1, "image must be an image reference (an image with restic)")
          .optional(),
        schedule: z
          .string({ error: "schedule must be a cron expression or `off`" })
          .trim()
          .superRefine((value, ctx) => {
            const problem = scheduleProblem(value);
            if (problem) {
              ctx.addIssue({ code: "custom", message: `schedule ${problem}` });
            }
          })
          .optional(),
        schedulerImage: nonEmpty("an image reference (schedulerImage: node ≥ 20)").optional(),
        dockerCliImage: nonEmpty("an image reference (dockerCliImage: a docker CLI)").optional(),
        offsite: z
          .object(
            {
              repository: maybeSecret("a restic repository URL (offsite.repository)")
                .refine(
                  (v) => typeof v !== "string" || RESTIC_REPOSITORY.test(v),
                  "offsite.repository must be a restic repository (s3:, sftp:, rest:, b2:, azure:, gs:, swift:, rclone: or an absolute path)",
                )
                .refine(
                  (v) => typeof v !== "string" || !/\/\/[^/]*:[^/]*@/.test(v),
                  "offsite.repository holds a password in plain text: set it with `pulumi config set --secret --path edms:backup.offsite.repository …`",
                ),
              env: z
                .record(
                  z
                    .string()
                    .regex(/^[A-Z_][A-Z0-9_]*$/, "offsite.env names must be environment variables"),
                  maybeSecret("a string (offsite.env values)"),
                  {
                    error:
                      "offsite.env must map environment variable names (A-Z, 0-9, _) to values",
                  },
                )
                .optional(),
            },
            { error: "offsite must be an object with a repository" },
          )
          .strict()
          .optional(),
      })
      .strict(),
    fix: 'e.g. `{beforeDeploy: true, drillBeforeDeploy: true, schedule: "0 */6 * * *", keep: 14, keepDaily: 7, keepWeekly: 4, keepMonthly: 6, image: restic/restic:0.17.3, offsite: {repository: s3:…, env: {AWS_SECRET_ACCESS_KEY: …}}}`; set credentials with `pulumi config set --secret --path`',
  },
  bootstrap: {
    schema: z
      .object({
        superuser: nonEmpty("a user name").optional(),
        email: z.string().email("email must be an e-mail address").optional(),
        fixtures: z
          .array(z.string({ error: "fixtures must all be strings" }).min(1), {
            error: "fixtures must be a list of fixture names",
          })
          .optional(),
      })
      .strict(),
    fix: "e.g. `{superuser: admin, email: admin@example.com, fixtures: [initial_users, initial_settings]}`",
  },
  proxy: {
    schema: z
      .object({
        enabled: z.boolean({ error: "enabled must be true or false" }).optional(),
        image: nonEmpty("an image reference").optional(),
        tls: z
          .object({
            port: port.optional(),
            certificateFile: pemFile("tls.certificateFile"),
            keyFile: pemFile("tls.keyFile"),
          })
          .strict()
          .optional(),
      })
      .strict(),
    fix: "e.g. `{enabled: true, image: haproxy:2.8, tls: {port: 443, certificateFile: certs/edms.crt, keyFile: certs/edms.key}}`",
  },
};

/** Thrown with every problem found, one per line, so an operator fixes a stack file in one pass. */
export class ConfigError extends Error {
  constructor(
    readonly stack: string,
    readonly problems: readonly string[],
  ) {
    super(
      `Stack \`${stack}\` has ${problems.length} configuration problem(s):\n  - ${problems.join("\n  - ")}`,
    );
    this.name = "ConfigError";
  }
}

export function parseJsonish(value: unknown): unknown {
  // `pulumi config set --path` and the Config API both hand structured values over as JSON text.
  if (typeof value === "string" && /^\s*[[{]/.test(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

export function validateSettings(stack: string, raw: RawConfig, dockerHost?: string): Settings {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.includes(key)) {
      problems.push(
        `\`edms:${key}\` is not a known setting. Remove it, or check the spelling against Pulumi.yaml.`,
      );
    }
  }
  for (const [key, rule] of Object.entries(RULES)) {
    const value = parseJsonish(raw[key]);
    if (value === undefined || value === null) {
      if (key === "environment" || key === "version") {
        problems.push(`\`edms:${key}\` is required: ${rule.fix}.`);
      }
      continue;
    }
    const parsed = rule.schema.safeParse(value);
    if (parsed.success) {
      values[key] = parsed.data;
    } else {
      const why = parsed.error.issues.map((i) => i.message).join("; ");
      problems.push(`\`edms:${key}\` ${why}: ${rule.fix}.`);
    }
  }

  const environment = values.environment as Environment | undefined;
  const { offsite: offsiteRaw, ...backupRaw } = (values.backup ?? {}) as Partial<BackupSettings> & {
    offsite?: { repository: unknown };
  };
  // Read from the raw value: a production stack that turns the backup off must hear so even when the
  // same object has another mistake.
  const rawBackup = parseJsonish(raw.backup) as
    { beforeDeploy?: unknown; drillBeforeDeploy?: unknown; schedule?: unknown } | undefined;
  if (environment === "production") {
    if (raw.dataGeneration !== undefined) {
      problems.push(
        "`edms:dataGeneration` is not allowed on production: production data is never reinitialised. Remove it from Pulumi.production.yaml.",
      );
    }
    if (rawBackup?.beforeDeploy === false || rawBackup?.beforeDeploy === "false") {
      problems.push(
        "`edms:backup.beforeDeploy: false` is not allowed on production: every production deploy is preceded by a backup. Remove `beforeDeploy` or set it to true.",
      );
    }
    if (rawBackup?.drillBeforeDeploy === false || rawBackup?.drillBeforeDeploy === "false") {
      problems.push(
        "`edms:backup.drillBeforeDeploy: false` is not allowed on production: a production deploy migrates only after its pre-deploy backup has been restored and checked in scratch space. Remove `drillBeforeDeploy` or set it to true.",
      );
    }
    if (typeof rawBackup?.schedule === "string" && rawBackup.schedule.trim() === SCHEDULE_OFF) {
      problems.push(
        `\`edms:backup.schedule: off\` is not allowed on production: production is backed up on a schedule from the Docker host, not only before deploys. Remove \`schedule\` for the default (\`${DEFAULT_SCHEDULES.production}\`) or set a cron expression, e.g. \`0 */4 * * *\`.`,
      );
    }
  } else if (
    (rawBackup?.drillBeforeDeploy === true || rawBackup?.drillBeforeDeploy === "true") &&
    !(rawBackup?.beforeDeploy === true || rawBackup?.beforeDeploy === "true")
  ) {
    problems.push(
      "`edms:backup.drillBeforeDeploy: true` needs `edms:backup.beforeDeploy: true`: the drill restores the pre-deploy backup. Set `beforeDeploy: true` too, or remove `drillBeforeDeploy`.",
    );
  }
  const proxyRaw = (values.proxy ?? {}) as {
    enabled?: boolean;
    image?: string;
    tls?: Omit<ProxyTlsSettings, "port"> & { port?: number };
  };
  const httpPort = (values.httpPort as number | undefined) ?? DEFAULTS.httpPort;
  if (proxyRaw.tls && (proxyRaw.tls.port ?? 443) === httpPort) {
    problems.push(
      `\`edms:proxy.tls.port\` must differ from \`edms:httpPort\` (${httpPort}): both are published by the proxy. Choose another port, e.g. 443.`,
    );
  }
  if (proxyRaw.tls && proxyRaw.enabled === false) {
    problems.push(
      "`edms:proxy.tls` needs the proxy: TLS is terminated there. Remove `enabled: false` or the `tls` block.",
    );
  }
  if (problems.length > 0 || environment === undefined) {
    throw new ConfigError(stack, problems);
  }

  const namePrefix = (values.namePrefix as string | undefined) ?? DEFAULTS.namePrefix;
  const dataGeneration = (values.dataGeneration as number | undefined) ?? DEFAULTS.dataGeneration;
  const bootstrapRaw = (values.bootstrap ?? {}) as Partial<BootstrapSettings>;
  return {
    stack,
    environment,
    version: values.version as string,
    backendImage: (values.backendImage as string | undefined) ?? DEFAULTS.backendImage,
    postgresImage: (values.postgresImage as string | undefined) ?? DEFAULTS.postgresImage,
    redisImage: (values.redisImage as string | undefined) ?? DEFAULTS.redisImage,
    namePrefix,
    dataGeneration,
    httpPort,
    backup: {
      ...defaultBackup(environment),
      ...backupRaw,
      ...(offsiteRaw
        ? {
            offsite: {
              display:
                typeof offsiteRaw.repository === "string"
                  ? redactRepository(offsiteRaw.repository)
                  : "(secret)",
            },
          }
        : {}),
    },
    bootstrap: { ...DEFAULTS.bootstrap, ...bootstrapRaw },
    proxy: {
      enabled: proxyRaw.enabled ?? DEFAULTS.proxy.enabled,
      image: proxyRaw.image ?? DEFAULTS.proxy.image,
      ...(proxyRaw.tls ? { tls: { ...proxyRaw.tls, port: proxyRaw.tls.port ?? 443 } } : {}),
    },
    dockerHost: dockerHost || undefined,
    names: resourceNames(namePrefix, dataGeneration),
  };
}

/** The off-host part of an already validated `edms:backup` value, with plain (decrypted) values. */
export function offsiteSecrets(backup: unknown): BackupSecrets | undefined {
  const offsite = (parseJsonish(backup) as { offsite?: { repository?: unknown; env?: unknown } })
    ?.offsite;
  if (!offsite || typeof offsite.repository !== "string") {
    return undefined;
  }
  const env = Object.fromEntries(
    Object.entries((offsite.env ?? {}) as Record<string, unknown>).filter(
      (e): e is [string, string] => typeof e[1] === "string",
    ),
  );
  return { repository: offsite.repository, env };
}
