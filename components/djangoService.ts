import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { stackLabels } from "./labels";
import { POSTGRES_DB, POSTGRES_USER, SECRETS_DIR } from "./postgres";
import { containerReplacement } from "./protection";
import { webContainerName, WEB_INTERNAL_PORT } from "./proxyConfig";

export const MEDIA_ROOT = "/srv/media";
export const WEB_PORT = WEB_INTERNAL_PORT;

/**
 * The environment every Django process of the stack gets: the long-running web and worker containers and
 * the one-off containers edms-ops starts (migrate, bootstrap). Secrets are only ever *paths*.
 */
export function djangoEnvironment(settings: Settings): string[] {
  return [
    "DJANGO_SETTINGS_MODULE=edms.settings",
    `EDMS_ENVIRONMENT=${settings.environment}`,
    `EDMS_VERSION=${settings.version}`,
    "POSTGRES_HOST=postgres",
    `POSTGRES_DB=${POSTGRES_DB}`,
    `POSTGRES_USER=${POSTGRES_USER}`,
    `POSTGRES_PASSWORD_FILE=${SECRETS_DIR}/postgres_password`,
    `DJANGO_SECRET_KEY_FILE=${SECRETS_DIR}/django_secret_key`,
    "REDIS_URL=redis://redis:6379/0",
    `MEDIA_ROOT=${MEDIA_ROOT}`,
  ];
}

export type DjangoProcess = "web" | "worker";

export interface DjangoServiceArgs {
  readonly settings: Settings;
  readonly process: DjangoProcess;
  /** Image id (not tag) so a rebuilt tag also replaces the container. */
  readonly image: pulumi.Input<string>;
  readonly network: pulumi.Input<string>;
  readonly mediaVolume: pulumi.Input<string>;
  readonly postgresPassword: pulumi.Input<string>;
  readonly secretKey: pulumi.Input<string>;
}

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
    this.container = new docker.Container(
      `${name}-container`,
      {
        name: web ? webContainerName(settings) : settings.names.workerContainer,
        image: args.image,
        restart: "unless-stopped",
        command: web
          ? [
              "gunicorn",
              "--bind",
              `0.0.0.0:${WEB_PORT}`,
              "--workers",
              "2",
              "--access-logfile",
              "-",
              "edms.wsgi",
            ]
          : [
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
        envs: djangoEnvironment(settings),
        uploads: [
          {
            file: `${SECRETS_DIR}/postgres_password`,
            content: args.postgresPassword,
            permissions: "0444",
          },
          {
            file: `${SECRETS_DIR}/django_secret_key`,
            content: args.secretKey,
            permissions: "0444",
          },
        ],
        volumes: [{ volumeName: args.mediaVolume, containerPath: MEDIA_ROOT }],
        networksAdvanced: [{ name: args.network }],
        ports: web && !proxied ? [{ internal: WEB_PORT, external: settings.httpPort }] : [],
        destroyGraceSeconds,
        labels: stackLabels(settings, {
          "edms.role": args.process,
          "edms.version": settings.version,
        }),
      },
      // dependsOn of a component does not hold back its children: the container itself must wait for
      // migrate/bootstrap, or the engine could start the new code on an unmigrated database.
      { parent: this, dependsOn: opts?.dependsOn, deleteBeforeReplace },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
