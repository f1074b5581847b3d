import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import {
  REDIS_CLI,
  REDIS_CONFIG_FILE,
  REDIS_PASSWORD_FILE,
  redisConfig,
} from "../model/containers";
import { healthyWhen, secretFile, stackContainer } from "./container";
import { CONTAINER_OPTIONS } from "../model/protection";

export interface RedisArgs {
  readonly settings: Settings;
  /** The stack's `internal` data network. */
  readonly network: pulumi.Input<string>;
  readonly volume: pulumi.Input<string>;
  readonly password: pulumi.Input<string>;
}

/**
 * Redis for cache and the celery broker; append-only file in `<prefix>_redis_data`. Never published, only on
 * the data network, and every client must authenticate: `requirepass` comes from a config file (redis-server's
 * first argument), never argv or env.
 */
export class Redis extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: RedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:Redis", name, {}, opts);
    const { settings } = args;
    this.container = stackContainer(
      name,
      { settings, role: "redis", networks: [{ name: args.network, aliases: ["redis"] }] },
      {
        name: settings.names.redisContainer,
        image: settings.redisImage,
        command: ["redis-server", REDIS_CONFIG_FILE, "--appendonly", "yes", "--dir", "/data"],
        // Read by redis after it drops to its own user, as the postgres password is by postgres.
        uploads: [
          secretFile(REDIS_CONFIG_FILE, pulumi.output(args.password).apply(redisConfig)),
          secretFile(REDIS_PASSWORD_FILE, args.password),
        ],
        volumes: [{ volumeName: args.volume, containerPath: "/data" }],
        ...healthyWhen(["CMD-SHELL", `sh -c '${REDIS_CLI}' redis-cli ping | grep -q PONG`]),
      },
      { parent: this, ...CONTAINER_OPTIONS },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
