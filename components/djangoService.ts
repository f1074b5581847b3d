import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { secretFile, stackContainer } from "./container";
import {
  APP_DB_PASSWORD_FILE,
  DATABASE_CA_FILE,
  djangoEnvironment,
  MEDIA_ROOT,
  REDIS_PASSWORD_FILE,
  S3_CA_FILE,
  S3_CREDENTIALS_FILE,
  SECRETS_DIR,
} from "../model/containers";
import { LABELS } from "../model/labels";
import { containerReplacement } from "../model/protection";
import { publishedPort } from "../model/https";
import { webContainerName, WEB_INTERNAL_PORT } from "../model/proxy";

export const WEB_PORT = WEB_INTERNAL_PORT;

export type DjangoProcess = "web" | "worker";

export interface DjangoServiceArgs {
  readonly settings: Settings;
  readonly process: DjangoProcess;
  /** Image id (not tag) so a rebuilt tag also replaces the container. */
  readonly image: pulumi.Input<string>;
  /** The stack's front network: web only (the proxy reaches it there; it publishes its port there). */
  readonly frontNetwork: pulumi.Input<string>;
  /** The stack's `internal` data network: PostgreSQL and Redis. */
  readonly dataNetwork: pulumi.Input<string>;
  readonly mediaVolume: pulumi.Input<string>;
  /** With an external database: the network it is reached through, and its server's CA (PEM). */
  readonly databaseNetwork?: pulumi.Input<string>;
  readonly databaseCa?: string;
  /** With bucket media: the network its endpoint is reached through, and boto3's credentials file. */
  readonly mediaNetwork?: pulumi.Input<string>;
  readonly s3Credentials?: pulumi.Input<string>;
  readonly s3Ca?: string;
  /** The application role's password (model/containers.ts APP_DB_USER); never the superuser's. */
  readonly appDbPassword: pulumi.Input<string>;
  readonly secretKey: pulumi.Input<string>;
  readonly redisPassword: pulumi.Input<string>;
}

/** What each process runs. */
const PROCESS_COMMAND: Record<DjangoProcess, string[]> = {
  web: [
    "gunicorn",
    "--bind",
    `0.0.0.0:${WEB_PORT}`,
    "--workers",
    "2",
    "--access-logfile",
    "-",
    "edms.wsgi",
  ],
  worker: [
    "python3",
    "-m",
    "celery",
    "-A",
    "edms",
    "worker",
    "--loglevel",
    "INFO",
    "--concurrency",
    "2",
  ],
};

/**
 * gunicorn (web) or celery (worker) from the backend image; secrets uploaded as files. Behind the proxy the web
 * container is named per release and publishes nothing; without it, it has the fixed name and the port.
 */
export class DjangoService extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: DjangoServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:DjangoService", name, {}, opts);
    const { settings } = args;
    const web = args.process === "web";
    const proxied = settings.proxy.enabled;
    const { deleteBeforeReplace, destroyGraceSeconds } = containerReplacement(
      args.process,
      proxied,
    );
    this.container = stackContainer(
      name,
      {
        settings,
        role: args.process,
        labels: { [LABELS.version]: settings.version },
        // The worker only talks to the datastores; web also faces the proxy (or the published port).
        networks: [
          ...(web ? [{ name: args.frontNetwork }] : []),
          { name: args.dataNetwork },
          ...(args.databaseNetwork ? [{ name: args.databaseNetwork }] : []),
          ...(args.mediaNetwork ? [{ name: args.mediaNetwork }] : []),
        ],
      },
      {
        name: web ? webContainerName(settings) : settings.names.workerContainer,
        image: args.image,
        command: PROCESS_COMMAND[args.process],
        envs: djangoEnvironment(settings, "app"),
        uploads: [
          secretFile(APP_DB_PASSWORD_FILE, args.appDbPassword),
          secretFile(`${SECRETS_DIR}/django_secret_key`, args.secretKey),
          secretFile(REDIS_PASSWORD_FILE, args.redisPassword),
          ...(args.databaseCa ? [secretFile(DATABASE_CA_FILE, args.databaseCa)] : []),
          ...(args.s3Credentials ? [secretFile(S3_CREDENTIALS_FILE, args.s3Credentials)] : []),
          ...(args.s3Ca ? [secretFile(S3_CA_FILE, args.s3Ca)] : []),
        ],
        // Bucket media: the volume is edms-ops' mirror of the bucket, never the app's.
        volumes: settings.media
          ? []
          : [{ volumeName: args.mediaVolume, containerPath: MEDIA_ROOT }],
        ports: web && !proxied ? [publishedPort(settings, WEB_PORT, settings.httpPort)] : [],
        destroyGraceSeconds,
      },
      // dependsOn of a component does not hold back its children: the container itself must wait for
      // migrate/bootstrap, or the engine could start the new code on an unmigrated database.
      { parent: this, dependsOn: opts?.dependsOn, deleteBeforeReplace },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
