/**
 * What every step of the deploy builds on (secrets, networks, volumes, datastores, the release image) and
 * the Edms component's arguments.
 */
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { HOOK_CONTRACTS } from "../model/hooks";
import { releaseReference } from "../model/images";
import { AlertSecrets, BackupSecrets, s3CredentialsFile, Settings } from "../model/settings";
import { DataVolumes } from "./dataVolumes";
import { opsHook } from "./hooks";
import { EdmsNetwork } from "./network";
import { Postgres } from "./postgres";
import { Redis } from "./redis";
import { EdmsSecrets } from "./secrets";

export interface EdmsArgs {
  readonly settings: Settings;
  /** `edms:superuserPassword`; generated when absent. */
  readonly superuserPassword?: pulumi.Input<string>;
  /** `edms:backup.offsite` repository and credentials (secret), when set. */
  readonly backupSecrets?: pulumi.Input<BackupSecrets>;
  /** Certificate chain + key for `edms:proxy.tls` (secret). */
  readonly tlsPem?: pulumi.Input<string>;
  /** `edms:alerts` target URLs (secret), uploaded into the scheduler as files. */
  readonly alertTargets?: pulumi.Input<AlertSecrets>;
  /** With `edms:database`: its password (secret) and the CA of its server's certificate (PEM). */
  readonly externalDatabase?: {
    readonly password: pulumi.Input<string>;
    readonly caCertificate?: string;
  };
  /** With `edms:media`: the bucket key's secret (secret), and the CA of the endpoint's certificate (PEM). */
  readonly bucketMedia?: {
    readonly secretKey: pulumi.Input<string>;
    readonly caCertificate?: string;
  };
}

/** What every later step of the deploy builds on: secrets, network, volumes, datastores, the release image. */
export interface Foundation {
  readonly name: string;
  readonly settings: Settings;
  readonly child: pulumi.CustomResourceOptions;
  readonly secrets: EdmsSecrets;
  readonly network: EdmsNetwork;
  readonly data: DataVolumes;
  readonly freshStartBackup?: command.local.Command;
  /** The stack's own server; none with an external database (`edms:database`). */
  readonly postgres?: Postgres;
  /** The password migrate and bootstrap connect with: the stack's superuser's, or the external admin's. */
  readonly ownerPassword: pulumi.Input<string>;
  /** The external server's CA (PEM), for web and worker's TLS. */
  readonly databaseCa?: string;
  /** With bucket media: boto3's credentials file for web and worker (secret), and the endpoint's CA. */
  readonly s3Credentials?: pulumi.Output<string>;
  readonly s3Ca?: string;
  readonly redis: Redis;
  readonly backendImage: docker.RemoteImage;
  /** The release's identity: hooks keyed on it run once per release. */
  readonly release: pulumi.Input<unknown>[];
  /** The database's identity: hooks keyed on it run again for a new (possibly empty) database. */
  readonly database: pulumi.Input<unknown>[];
  readonly datastores: pulumi.Resource[];
}

export function foundation(name: string, args: EdmsArgs, parent: pulumi.Resource): Foundation {
  const { settings } = args;
  const child = { parent };
  const secrets = new EdmsSecrets(
    `${name}-secrets`,
    { superuserPassword: args.superuserPassword },
    child,
  );
  const network = new EdmsNetwork(`${name}-network`, { settings }, child);
  const { data, freshStartBackup } = dataVolumes(name, settings, network, child);
  const postgres = data.volumes.postgres
    ? new Postgres(
        `${name}-postgres`,
        {
          settings,
          network: network.dataName,
          volume: data.volumes.postgres.name,
          password: secrets.postgresPassword,
          after: freshStartBackup ? [freshStartBackup] : [],
        },
        child,
      )
    : undefined;
  const redis = new Redis(
    `${name}-redis`,
    {
      settings,
      network: network.dataName,
      volume: data.volumes.redis.name,
      password: secrets.redisPassword,
    },
    child,
  );
  const backendImage = new docker.RemoteImage(
    `${name}-backend-image`,
    // keepLocally: an old release's image stays on the host, so rollback needs no registry. Pinned by
    // `edms:releaseDigest` when set (model/images.ts).
    { name: releaseReference(settings), keepLocally: true },
    child,
  );
  return {
    name,
    settings,
    child,
    secrets,
    network,
    data,
    freshStartBackup,
    postgres,
    ownerPassword: args.externalDatabase?.password ?? secrets.postgresPassword,
    databaseCa: args.externalDatabase?.caCertificate,
    ...bucketFiles(settings, args.bucketMedia),
    redis,
    backendImage,
    release: [settings.version, backendImage.imageId],
    database: databaseIdentity(settings, data, postgres, redis),
    datastores: [...(postgres ? [postgres] : []), redis, data],
  };
}

/** With bucket media: boto3's credentials file (secret) and the endpoint's CA, for web and worker. */
function bucketFiles(
  settings: Settings,
  bucket: EdmsArgs["bucketMedia"],
): Pick<Foundation, "s3Credentials" | "s3Ca"> {
  const media = settings.media;
  if (!media || !bucket) {
    return {};
  }
  const { secretKey, caCertificate } = bucket;
  return {
    s3Credentials: pulumi.secret(
      pulumi.output(secretKey).apply((k) => s3CredentialsFile(media.accessKeyId, k)),
    ),
    ...(caCertificate ? { s3Ca: caCertificate } : {}),
  };
}

/**
 * A new postgres container means possibly a new, empty database: after a `dataGeneration` bump, or after
 * `edms-ops reset` and a refreshing `pulumi up` recreate the volume under the same name. migrate and
 * bootstrap are idempotent (bootstrap never overwrites), so re-running them then is safe, and skipping
 * them is not. An external database is the server, its port and the role that owns it, and the redis
 * container: `reset` empties the database and removes redis, so the next `pulumi up` runs them again (as it
 * does on a new host).
 */
function databaseIdentity(
  settings: Settings,
  data: DataVolumes,
  postgres: Postgres | undefined,
  redis: Redis,
): pulumi.Input<unknown>[] {
  const external = settings.database;
  if (external || !postgres || !data.volumes.postgres) {
    return [
      external?.host ?? null,
      external?.port ?? null,
      external?.user ?? null,
      redis.container.id,
    ];
  }
  return [data.volumes.postgres.name, postgres.container.id];
}

/**
 * The data volumes, and the fresh start's backup of the earlier generation (dev, staging): declared before
 * any volume of the new generation, so a failed backup leaves the earlier generation's volumes as they are
 * (not replaced, not "pending delete").
 */
function dataVolumes(
  name: string,
  settings: Settings,
  network: EdmsNetwork,
  child: { parent: pulumi.Resource },
): { data: DataVolumes; freshStartBackup?: command.local.Command } {
  const hook: { freshStartBackup?: command.local.Command } = {};
  const data = new DataVolumes(
    `${name}-data`,
    {
      settings,
      beforeGeneration: (backups) =>
        (hook.freshStartBackup = freshStartBackupHook(settings, {
          ...child,
          dependsOn: [backups, network],
        })),
    },
    child,
  );
  return { data, freshStartBackup: hook.freshStartBackup };
}

/**
 * A `dataGeneration` bump replaces the postgres container with one on new, empty volumes: first the running
 * one's data (the earlier generation) is backed up, the undo of the fresh start. Never on production, where
 * dataGeneration is a config error.
 */
function freshStartBackupHook(
  settings: Settings,
  opts: pulumi.CustomResourceOptions,
): command.local.Command | undefined {
  return settings.environment === "production"
    ? undefined
    : opsHook(
        HOOK_CONTRACTS.freshStartBackup,
        { settings, triggers: [settings.dataGeneration] },
        opts,
      );
}
