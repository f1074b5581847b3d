import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { stackLabels } from "./labels";

export interface EdmsNetworkArgs {
  readonly settings: Settings;
}

/**
 * The stack's two bridge networks. `front` holds the proxy and web (web publishes `edms:httpPort` there
 * when the proxy is off); `data` is `internal` (no gateway, no published port) and holds web, worker,
 * PostgreSQL, Redis and edms-ops' one-off Django containers. The internet-facing proxy is only on `front`,
 * so a foothold in it reaches neither PostgreSQL nor Redis.
 */
export class EdmsNetwork extends pulumi.ComponentResource {
  readonly front: docker.Network;
  readonly data: docker.Network;
  readonly frontName: pulumi.Output<string>;
  readonly dataName: pulumi.Output<string>;
  /**
   * Where an external database (`edms:database`) is reached: `database.network` as given, or the stack's
   * `<prefix>-database` bridge (with a gateway); undefined for the stack's own postgres.
   */
  readonly databaseName?: pulumi.Input<string>;
  /**
   * Where the S3 endpoint of bucket media (`edms:media`) is reached: `media.network` as given, or the
   * stack's `<prefix>-media` bridge (with a gateway); undefined for media in the volume.
   */
  readonly mediaName?: pulumi.Input<string>;

  constructor(name: string, args: EdmsNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:EdmsNetwork", name, {}, opts);
    const { settings } = args;
    const labels = stackLabels(settings);
    // New resource names: the one flat network of earlier releases (`<name>-net`) is deleted by the
    // engine at the end of the update, once the containers on it have been replaced.
    this.front = new docker.Network(
      `${name}-front`,
      { name: settings.names.frontNetwork, driver: "bridge", labels },
      { parent: this },
    );
    this.data = new docker.Network(
      `${name}-data`,
      { name: settings.names.dataNetwork, driver: "bridge", internal: true, labels },
      { parent: this },
    );
    this.frontName = this.front.name;
    this.dataName = this.data.name;
    // A server off the stack: the network it is reached through, given or a bridge of the stack's own.
    const wayOut = (role: string, dockerName: string, given: { network?: string } | undefined) =>
      given?.network ??
      (given
        ? new docker.Network(
            `${name}-${role}`,
            { name: dockerName, driver: "bridge", labels },
            { parent: this },
          ).name
        : undefined);
    this.databaseName = wayOut("database", settings.names.databaseNetwork, settings.database);
    this.mediaName = wayOut("media", settings.names.mediaNetwork, settings.media);
    this.registerOutputs({ front: this.frontName, data: this.dataName });
  }
}
