import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../model/settings";
import { LABELS } from "../model/labels";
import { stackLabels } from "./labels";
import { declaredVolumeRoles, VolumeRole, volumeProtection } from "../model/protection";

export interface DataVolumesArgs {
  readonly settings: Settings;
  /**
   * Declares what must run once the backups volume (which has no generation) exists and before any volume of
   * a data generation is created or replaced: the fresh start's backup of the earlier generation. A failed
   * backup then leaves the earlier generation's volumes untouched, not "pending delete".
   */
  readonly beforeGeneration?: (backups: docker.Volume) => pulumi.Resource | undefined;
}

/**
 * The named volumes: postgres (unless `edms:database` is external), redis, media, backups; names from
 * `Settings.names`, protection from `volumeProtection`. With an external database, the credentials volume
 * `backups init` fills for edms-ops' clients instead: nothing in it is data (the next deploy writes it again).
 * With bucket media, the media volume is the bucket's mirror (what backups read), plus a credentials volume.
 */
export class DataVolumes extends pulumi.ComponentResource {
  readonly volumes: Omit<Record<VolumeRole, docker.Volume>, "postgres"> & {
    readonly postgres?: docker.Volume;
  };
  readonly databaseCredentials?: docker.Volume;
  /** With bucket media (`edms:media`): edms-ops' rclone config for it, written by `backups init`. */
  readonly mediaCredentials?: docker.Volume;

  constructor(name: string, args: DataVolumesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:DataVolumes", name, {}, opts);
    const { settings } = args;
    const names: Record<VolumeRole, string> = {
      postgres: settings.names.postgresVolume,
      redis: settings.names.redisVolume,
      media: settings.names.mediaVolume,
      backups: settings.names.backupsVolume,
    };
    const volume = (role: VolumeRole, dependsOn: pulumi.Resource[]) => {
      const protection = volumeProtection(settings.environment, role);
      return new docker.Volume(
        `${name}-${role}`,
        {
          name: names[role],
          labels: stackLabels(settings, { [LABELS.data]: protection.data, [LABELS.role]: role }),
        },
        {
          parent: this,
          protect: protection.protect,
          retainOnDelete: protection.retainOnDelete,
          // A name the program sets makes the bridged provider ask for delete-first replacement: a
          // `dataGeneration` bump would delete the containers and the earlier generation's volumes before
          // `freshStartBackup` could back them up. Create-first, the old ones go at the end of a successful
          // update. A replacement under the same name hands the new resource the old volume and then deletes
          // it: the program refuses the changes that cause one that it can see (hostVolumes.ts).
          deleteBeforeReplace: false,
          dependsOn,
        },
      );
    };
    // The backups volume first: the generation's volumes wait for what `beforeGeneration` declares.
    const volumes = { backups: volume("backups", []) } as Record<VolumeRole, docker.Volume>;
    const before = args.beforeGeneration?.(volumes.backups);
    for (const role of declaredVolumeRoles(settings).filter((r) => r !== "backups")) {
      volumes[role] = volume(role, before ? [before] : []);
    }
    this.volumes = volumes;
    // Not data: every deploy's `backups init` writes them again from the stack's config.
    const credentials = (role: string, volume: string) =>
      new docker.Volume(
        `${name}-${role}`,
        {
          name: volume,
          labels: stackLabels(settings, { [LABELS.data]: "cache", [LABELS.role]: role }),
        },
        { parent: this },
      );
    this.databaseCredentials = settings.database
      ? credentials("database-credentials", settings.names.databaseCredentialsVolume)
      : undefined;
    this.mediaCredentials = settings.media
      ? credentials("media-credentials", settings.names.mediaCredentialsVolume)
      : undefined;
    this.registerOutputs({ names });
  }
}
