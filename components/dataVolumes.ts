import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { LABELS } from "../model/labels";
import { stackLabels } from "./labels";
import { VOLUME_ROLES, VolumeRole, volumeProtection } from "../model/protection";

export interface DataVolumesArgs {
  readonly settings: Settings;
}

/** The four named volumes. Names come from `Settings.names`; protection from `volumeProtection`. */
export class DataVolumes extends pulumi.ComponentResource {
  readonly volumes: Record<VolumeRole, docker.Volume>;

  constructor(name: string, args: DataVolumesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:DataVolumes", name, {}, opts);
    const { settings } = args;
    const names: Record<VolumeRole, string> = {
      postgres: settings.names.postgresVolume,
      redis: settings.names.redisVolume,
      media: settings.names.mediaVolume,
      backups: settings.names.backupsVolume,
    };
    const volumes = {} as Record<VolumeRole, docker.Volume>;
    for (const role of VOLUME_ROLES) {
      const protection = volumeProtection(settings.environment, role);
      volumes[role] = new docker.Volume(
        `${name}-${role}`,
        {
          name: names[role],
          labels: stackLabels(settings, { [LABELS.data]: protection.data, [LABELS.role]: role }),
        },
        { parent: this, protect: protection.protect, retainOnDelete: protection.retainOnDelete },
      );
    }
    this.volumes = volumes;
    this.registerOutputs({ names });
  }
}
