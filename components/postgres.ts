import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { stackLabels } from "./labels";
import { CONTAINER_OPTIONS } from "./protection";

/** Where secrets land inside containers; settings read them through `*_FILE` variables. */
export const SECRETS_DIR = "/run/secrets";
export const POSTGRES_USER = "edms";
export const POSTGRES_DB = "edms";

export interface PostgresArgs {
  readonly settings: Settings;
  readonly network: pulumi.Input<string>;
  readonly volume: pulumi.Input<string>;
  readonly password: pulumi.Input<string>;
  /** Must have run before the container is (re)created, e.g. the backup of an earlier data generation. */
  readonly after?: pulumi.Resource[];
}

/** PostgreSQL on the internal network only, data in `<prefix>_postgres_data`. Image: `edms:postgresImage`. */
export class Postgres extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: PostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:Postgres", name, {}, opts);
    const { settings } = args;
    this.container = new docker.Container(
      `${name}-container`,
      {
        name: settings.names.postgresContainer,
        image: settings.postgresImage,
        restart: "unless-stopped",
        envs: [
          `POSTGRES_USER=${POSTGRES_USER}`,
          `POSTGRES_DB=${POSTGRES_DB}`,
          `POSTGRES_PASSWORD_FILE=${SECRETS_DIR}/postgres_password`,
          "PGDATA=/var/lib/postgresql/data",
        ],
        // The official image reads the file after dropping to the postgres user, hence world-readable
        // inside the container (as Docker secrets are by default).
        uploads: [
          { file: `${SECRETS_DIR}/postgres_password`, content: args.password, permissions: "0444" },
        ],
        volumes: [{ volumeName: args.volume, containerPath: "/var/lib/postgresql/data" }],
        networksAdvanced: [{ name: args.network, aliases: ["postgres"] }],
        healthcheck: {
          tests: ["CMD-SHELL", `pg_isready -U ${POSTGRES_USER} -d ${POSTGRES_DB}`],
          interval: "2s",
          timeout: "5s",
          retries: 30,
        },
        // A clean shutdown checkpoints instead of leaving crash recovery to the next start.
        stopTimeout: 60,
        wait: true,
        waitTimeout: 120,
        labels: stackLabels(settings, { "edms.role": "postgres" }),
      },
      { parent: this, ...CONTAINER_OPTIONS, dependsOn: args.after ?? [] },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
