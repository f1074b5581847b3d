/**
 * `edms:backup`: the one key whose defaults differ by environment, so its schema is built per environment
 * and each field's default is what that environment gets when the stack leaves it out.
 */
import { z } from "zod";
import { DEFAULT_SCHEDULES, scheduleProblem } from "../schedule";
import { Environment } from "./environments";
import { durationMs, integer, maybeSecret, nonEmpty, parseJsonish, setting } from "./fields";

export const DEFAULT_BACKUP_IMAGE = "restic/restic:0.18.0";
/**
 * The oldest restic edms-ops runs: 0.17 restores only what differs (`--overwrite`, `--delete`) and reads
 * a subfolder of a snapshot into a target's root; the code for older restic is gone.
 */
export const MINIMUM_RESTIC: readonly [number, number] = [0, 17];

/** `restic/restic:0.16.4` → [0, 16]; null when the tag names no restic version (a custom image). */
export function resticImageVersion(image: string): [number, number] | null {
  const match = /(?:^|\/)restic(?::v?(\d+)\.(\d+)(?:\.\d+)?)(?:@sha256:[0-9a-f]+)?$/.exec(image);
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/** True when [major, minor] is older than MINIMUM_RESTIC. */
export function olderThanMinimum([major, minor]: readonly [number, number]): boolean {
  return major < MINIMUM_RESTIC[0] || (major === MINIMUM_RESTIC[0] && minor < MINIMUM_RESTIC[1]);
}
/** Official images; the scheduler's image is built from them on the Docker host (images/scheduler/Dockerfile). */
export const DEFAULT_SCHEDULER_IMAGE = "node:20-bookworm-slim";

/** Production backs up and drills before every deploy and keeps more; elsewhere deploys stay quick. */
const BY_ENVIRONMENT = {
  production: { beforeDeploy: true, drillBeforeDeploy: true, keep: 14 },
  staging: { beforeDeploy: false, drillBeforeDeploy: false, keep: 5 },
  dev: { beforeDeploy: false, drillBeforeDeploy: false, keep: 5 },
} as const satisfies Record<Environment, object>;

/** `edms:backup.rpo` that turns the newest-good-backup alert off. */
export const RPO_OFF = "off";
/**
 * Two periods of the default schedule: one failed or missed backup is tolerated, two are not. Dev takes no
 * scheduled backups by default, so it has no objective.
 */
export const DEFAULT_RPO = {
  production: "12h",
  staging: "48h",
  dev: RPO_OFF,
} as const satisfies Record<Environment, string>;

/** restic's backends (`restic init --help`), or an absolute path on the Docker host. */
const RESTIC_REPOSITORY = /^(\/|(s3|sftp|rest|b2|azure|gs|swift|rclone):)/;

/** `user:password@` of a repository URL: up to the last @ before the path (restic allows @ in the password). */
const USERINFO = /\/\/([^/]*)@/;
const QUERY = /\?(.*)$/;

/** The repository URL without `user:password@` and without a query string, for status lines. */
export function redactRepository(repository: string): string {
  return repository.replace(USERINFO, "//").replace(QUERY, "");
}

/** What redactRepository leaves out that is secret: the password (after the user's first `:`) and the query. */
export function repositorySecrets(repository: string): string[] {
  const userinfo = USERINFO.exec(repository)?.[1] ?? "";
  const colon = userinfo.indexOf(":");
  return [colon >= 0 ? userinfo.slice(colon + 1) : "", QUERY.exec(repository)?.[1] ?? ""].filter(
    Boolean,
  );
}

/**
 * An rclone repository with connection-string parameters (`rclone::s3,access_key_id=…,secret_access_key=…:b/p`):
 * restic starts `rclone serve restic` with the remote, parameters and all, as a command-line argument (the
 * Docker host's process list shows it) and names the repository in its errors, which reach status, health,
 * alerts and logs. No setting hides them, so such a repository is refused wherever it arrives.
 */
export function rcloneParameters(repository: string): boolean {
  // rclone takes parameters only right after the remote's name (or `:backend`), which holds no `,` or `:`.
  return /^rclone::?[^:,]*,/.test(repository);
}

export const RCLONE_PARAMETERS_PROBLEM =
  "offsite.repository is an rclone remote with connection-string parameters (`,name=value`): restic passes them to rclone as a command-line argument, visible in the Docker host's process list, and prints them in its errors";
export const RCLONE_PARAMETERS_FIX =
  "Use restic's own backend for that service (s3:, b2:, azure:, gs:, swift:, sftp:, rest:) with its credentials in `edms:backup.offsite.env` (`pulumi config set --secret --path edms:backup.offsite.env.<NAME> …`).";

const keepCount = (key: string, description: string) =>
  setting(integer.pipe(z.number().int().min(0, `${key} must be 0 or more`)).optional(), {
    description,
  });

const image = (what: string, fallback: string, description: string) =>
  setting(nonEmpty(`an image reference (${what})`).default(fallback), { description });

/**
 * The variables restic's backends read (S3, B2, Azure, GCS, Swift, REST): nothing that changes how a process
 * runs (PATH, LD_PRELOAD, BASH_ENV) or configures a program (RCLONE_*: its sftp backend runs a command).
 */
export const OFFSITE_ENV_PREFIXES = [
  "AWS_",
  "B2_",
  "AZURE_",
  "GOOGLE_",
  "OS_",
  "ST_",
  "RESTIC_REST_",
];

// Settings travel as plain JSON (hooks, the scheduler's env), so the parsed value keeps only a display
// form of the repository; offsiteSecrets() hands the credentials to Pulumi as secrets.
const offsite = z
  .object(
    {
      repository: setting(
        maybeSecret("a restic repository URL (offsite.repository)")
          .refine(
            (v) => typeof v !== "string" || RESTIC_REPOSITORY.test(v),
            "offsite.repository must be a restic repository (s3:, sftp:, rest:, b2:, azure:, gs:, swift:, rclone: or an absolute path)",
          )
          .refine(
            (v) => typeof v !== "string" || !rcloneParameters(v),
            `${RCLONE_PARAMETERS_PROBLEM}. ${RCLONE_PARAMETERS_FIX}`,
          )
          .refine(
            (v) => typeof v !== "string" || !/\/\/[^/]*:[^/]*@/.test(v),
            "offsite.repository holds a password in plain text: set it with `pulumi config set --secret --path edms:backup.offsite.repository …`",
          ),
        {
          description:
            "Any restic repository URL (s3:, sftp:, rest:, b2:, azure:, gs:, swift:, rclone: or an absolute path); a password in it must be set with `--secret`.",
          secret: true,
        },
      ),
      env: setting(
        z
          .record(
            z
              .string()
              .regex(/^[A-Z_][A-Z0-9_]*$/, "offsite.env names must be environment variables"),
            maybeSecret("a string (offsite.env values)").refine(
              (v) => typeof v !== "string",
              "offsite.env holds a value in plain text: set each with `pulumi config set --secret --path edms:backup.offsite.env.<NAME> <value>`",
            ),
            { error: "offsite.env must map environment variable names (A-Z, 0-9, _) to values" },
          )
          .superRefine((env, ctx) => {
            for (const name of Object.keys(env)) {
              if (!OFFSITE_ENV_PREFIXES.some((prefix) => name.startsWith(prefix))) {
                ctx.addIssue({
                  code: "custom",
                  message: `offsite.env may set restic's backend variables only (${OFFSITE_ENV_PREFIXES.map((p) => `${p}*`).join(", ")}), not \`${name}\`: remove it`,
                });
              }
            }
          })
          .optional(),
        {
          description: `Backend variables, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for \`s3:\`: names ${OFFSITE_ENV_PREFIXES.map((p) => `${p}*`).join(", ")} only, each value set with \`--secret\`.`,
          secret: true,
        },
      ),
    },
    { error: "offsite must be an object with a repository" },
  )
  .strict()
  .transform((o) => ({
    /**
     * Where off-host copies go, for display only: the repository URL with any user:password removed, or
     * `(secret)` when the stack file holds it encrypted.
     */
    display: typeof o.repository === "string" ? redactRepository(o.repository) : "(secret)",
  }));

function scheduleField(environment: Environment) {
  const schema = z
    .string({ error: "schedule must be a cron expression or `off`" })
    .trim()
    .superRefine((value, ctx) => {
      const problem = scheduleProblem(value);
      if (problem) {
        ctx.addIssue({ code: "custom", message: `schedule ${problem}` });
      }
    })
    .default(DEFAULT_SCHEDULES[environment]);
  return setting(schema, {
    description:
      "When the scheduler container on the Docker host runs `edms-ops backup --reason scheduled` (same retention and off-host copy): a cron expression in UTC (5 fields, 6 with seconds first, or @hourly/@daily/…), or `off`.",
    production: "cannot be `off`: production is backed up on a schedule from the Docker host",
  });
}

/** The fields whose defaults depend on the environment, with that environment's defaults. */
function deployFields(environment: Environment) {
  const defaults = BY_ENVIRONMENT[environment];
  return {
    beforeDeploy: setting(
      z.boolean({ error: "beforeDeploy must be true or false" }).default(defaults.beforeDeploy),
      {
        description: "Take `edms-ops backup --reason pre-deploy` before migrating.",
        production: "cannot be `false`: every production deploy is preceded by a backup",
      },
    ),
    drillBeforeDeploy: setting(
      z
        .boolean({ error: "drillBeforeDeploy must be true or false" })
        .default(defaults.drillBeforeDeploy),
      {
        description:
          "Restore the pre-deploy backup into scratch space and run the release's checks (`edms-ops drill`) before `migrate`. Needs `beforeDeploy`.",
        production:
          "cannot be `false`: production migrates only after its pre-deploy backup was restored and checked",
      },
    ),
    keep: setting(
      integer.pipe(z.number().int().min(1, "keep must be at least 1")).default(defaults.keep),
      {
        description:
          "Newest backups kept by the retention policy (rollback targets are kept on top).",
      },
    ),
  };
}

function rpoField(environment: Environment) {
  const schema = z
    .string({ error: "rpo must be a duration like `6h` or `off`" })
    .trim()
    .refine(
      (v) => v === RPO_OFF || (durationMs(v) ?? 0) >= 60_000,
      "rpo must be a duration of at least a minute in minutes, hours or days (`30m`, `6h`, `2d`) or `off`",
    )
    .default(DEFAULT_RPO[environment]);
  return setting(schema, {
    description:
      "Recovery point objective: the scheduler alerts (`edms:alerts`) when the newest good backup (not failed by its latest drill) is older than this: `30m`, `6h`, `2d`, or `off`.",
  });
}

const resticImage = setting(
  z
    .string({ error: "image must be an image reference" })
    .trim()
    .min(1, "image must be an image reference (an image with restic)")
    .refine(
      (image) => {
        const version = resticImageVersion(image);
        return !version || !olderThanMinimum(version);
      },
      {
        error: `image names a restic older than ${MINIMUM_RESTIC.join(".")}, the oldest edms-ops supports: use ${DEFAULT_BACKUP_IMAGE} (the default) or newer`,
      },
    )
    .default(DEFAULT_BACKUP_IMAGE),
  { description: "Image with `restic` and a POSIX shell, run on the Docker host." },
);

const schedulerFields = {
  schedulerImage: image(
    "schedulerImage: node ≥ 20",
    DEFAULT_SCHEDULER_IMAGE,
    "Image whose `/usr/local/bin/node` (node ≥ 20) the scheduler's image copies; the scheduler's base is `edms:postgresImage`.",
  ),
  // Read so that stack files written for an earlier release still load (and roll back); unused.
  dockerCliImage: setting(z.string().optional(), {
    description:
      "No longer used: the scheduler has no docker CLI and no engine socket. Remove it (`pulumi config rm --path edms:backup.dockerCliImage`).",
  }),
};

const retentionFields = {
  keepDaily: keepCount(
    "keepDaily",
    "On top of `keep`: the newest backup of each of the last N days (restic `--keep-daily`).",
  ),
  keepWeekly: keepCount(
    "keepWeekly",
    "On top of `keep`: the newest backup of each of the last N ISO weeks (restic `--keep-weekly`).",
  ),
  keepMonthly: keepCount(
    "keepMonthly",
    "On top of `keep`: the newest backup of each of the last N months (restic `--keep-monthly`).",
  ),
};

export function backupSchema(environment: Environment) {
  // The field order is the order of Settings JSON (the scheduler container's env): keep it.
  return z
    .object({
      ...deployFields(environment),
      image: resticImage,
      schedule: scheduleField(environment),
      ...schedulerFields,
      ...retentionFields,
      offsite: setting(offsite.optional(), {
        description:
          "A second restic repository (any backend) that every backup is copied to: `{repository, env}`. Settings keep only a redacted display form.",
      }),
      rpo: rpoField(environment),
      drillScratch: setting(
        z
          .string({ error: "drillScratch must be an absolute directory on the Docker host" })
          .trim()
          .regex(
            /^\/[A-Za-z0-9._/-]*$/,
            "drillScratch must be an absolute directory on the Docker host (letters, digits, `._-/`), e.g. `/mnt/big/edms-drills`",
          )
          .refine((v) => !v.split("/").includes(".."), "drillScratch must not contain `..`")
          .optional(),
        {
          description:
            "Directory on the Docker host where a drill puts its scratch copy of the database and the media (default: volumes on Docker's data root). A drill is refused up front when that filesystem cannot hold them.",
        },
      ),
    })
    .strict();
}

export const BACKUP_FIX =
  'e.g. `{beforeDeploy: true, drillBeforeDeploy: true, schedule: "0 */6 * * *", keep: 14, keepDaily: 7, keepWeekly: 4, keepMonthly: 6, image: restic/restic:0.18.0, offsite: {repository: s3:…, env: {AWS_SECRET_ACCESS_KEY: …}}}`; set credentials with `pulumi config set --secret --path`';

/** Credentials of the off-host repository, as plain values: only ever handed to Pulumi as secrets. */
export interface BackupSecrets {
  readonly repository: string;
  /** Backend variables, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for `s3:`. */
  readonly env: Record<string, string>;
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
