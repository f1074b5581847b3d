import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { PGDATA, POSTGRES_DB, POSTGRES_USER, SUPERUSER_PASSWORD_FILE } from "../model/containers";
import { healthyWhen, secretFile, stackContainer } from "./container";
import { CONTAINER_OPTIONS } from "../model/protection";

export interface PostgresArgs {
  readonly settings: Settings;
  /** The stack's `internal` data network. */
  readonly network: pulumi.Input<string>;
  readonly volume: pulumi.Input<string>;
  readonly password: pulumi.Input<string>;
  /** Must have run before the container is (re)created, e.g. the backup of an earlier data generation. */
  readonly after?: pulumi.Resource[];
}

/** PostgreSQL on the internal data network only, data in `<prefix>_postgres_data`. Image: `edms:postgresImage`. */
export class Postgres extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: PostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:Postgres", name, {}, opts);
    const { settings } = args;
    this.container = stackContainer(
      name,
      { settings, role: "postgres", networks: [{ name: args.network, aliases: ["postgres"] }] },
      {
        name: settings.names.postgresContainer,
        image: settings.postgresImage,
        envs: [
          `POSTGRES_USER=${POSTGRES_USER}`,
          `POSTGRES_DB=${POSTGRES_DB}`,
          `POSTGRES_PASSWORD_FILE=${SUPERUSER_PASSWORD_FILE}`,
          `PGDATA=${PGDATA}`,
        ],
        // The official image reads the file after dropping to the postgres user, hence world-readable
        // inside the container (as Docker secrets are by default).
        uploads: [secretFile(SUPERUSER_PASSWORD_FILE, args.password)],
        volumes: [{ volumeName: args.volume, containerPath: PGDATA }],
        ...healthyWhen(["CMD-SHELL", `pg_isready -U ${POSTGRES_USER} -d ${POSTGRES_DB}`]),
        // A clean shutdown checkpoints instead of leaving crash recovery to the next start.
        stopTimeout: 60,
      },
      { parent: this, ...CONTAINER_OPTIONS, dependsOn: args.after ?? [] },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
