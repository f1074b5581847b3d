import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { stackLabels } from "./labels";

export interface EdmsNetworkArgs {
  readonly settings: Settings;
}

/**
 * The stack's private bridge network. PostgreSQL and Redis are reachable only on it (they publish no
 * ports); the web container publishes `edms:httpPort`.
 */
export class EdmsNetwork extends pulumi.ComponentResource {
  readonly network: docker.Network;
  readonly name: pulumi.Output<string>;

  constructor(name: string, args: EdmsNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:EdmsNetwork", name, {}, opts);
    this.network = new docker.Network(
      `${name}-net`,
      { name: args.settings.names.network, driver: "bridge", labels: stackLabels(args.settings) },
      { parent: this },
    );
    this.name = this.network.name;
    this.registerOutputs({ name: this.name });
  }
}
