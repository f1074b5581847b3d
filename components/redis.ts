import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { LABELS } from "../model/labels";
import { stackLabels } from "./labels";
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
    this.container = new docker.Container(
      `${name}-container`,
      {
        name: settings.names.redisContainer,
        image: settings.redisImage,
        restart: "unless-stopped",
        command: ["redis-server", "--appendonly", "yes", "--dir", "/data"],
        volumes: [{ volumeName: args.volume, containerPath: "/data" }],
        networksAdvanced: [{ name: args.network, aliases: ["redis"] }],
        healthcheck: {
          tests: ["CMD", "redis-cli", "ping"],
          interval: "2s",
          timeout: "5s",
          retries: 30,
        },
        wait: true,
        waitTimeout: 120,
        labels: stackLabels(settings, { [LABELS.role]: "redis" }),
      },
      { parent: this, ...CONTAINER_OPTIONS },
    );
    this.registerOutputs({ id: this.container.id });
  }
}
