import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { healthyWhen, stackContainer } from "./container";
import { CONTAINER_OPTIONS } from "../model/protection";

export interface RedisArgs {
  readonly settings: Settings;
  readonly network: pulumi.Input<string>;
  readonly volume: pulumi.Input<string>;
}

/** Redis for cache and the celery broker; append-only file in `<prefix>_redis_data`. Never published. */
export class Redis extends pulumi.ComponentResource {
  readonly container: docker.Container;

  constructor(name: string, args: RedisArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:Redis", name, {}, opts);
    const { settings } = args;
    this.container = stackContainer(
      name,
      { settings, role: "redis", network: args.network, aliases: ["redis"] },
      {
        name: settings.names.redisContainer,
        image: settings.redisImage,
        command: ["redis-server", "--appendonly", "yes", "--dir", "/data"],
        volumes: [{ volumeName: args.volume, containerPath: "/data" }],
        ...healthyWhen(["CMD", "redis-cli", "ping"]),
      },
      { parent: this, ...CONTAINER_OPTIONS },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
