import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import {
  ALERT_TARGET_FILES,
  BACKUP_DB_PASSFILE,
  BACKUP_DB_USER,
  DATABASE_CA_FILE,
  pgpassField,
  LocalMounts,
  OPS_PATHS,
} from "../model/containers";
import { CONTAINER_OPTIONS, containerReplacement } from "../model/protection";
import { alertTargetCount, AlertSecrets, Settings } from "../model/settings";
import { PROJECT_DIR } from "./hooks";
import { secretFile, stackContainer } from "./container";

/** Made by `npm run build` (scripts/bundle-scheduler.js): the image's build context. */
export const SCHEDULER_CONTEXT = path.join(PROJECT_DIR, "build", "scheduler");
export const SCHEDULER_BUNDLE = "edms-ops.cjs";
export const SCHEDULER_DOCKERFILE = path.join(PROJECT_DIR, "images", "scheduler", "Dockerfile");

export interface SchedulerArgs {
  readonly settings: Settings;
  /** Must have run before the container starts: the `backupInit` hook (repository keys on the host). */
  readonly after?: pulumi.Resource[];
  /** `edms:alerts` target URLs (secret): uploaded as root-only files, never env. */
  readonly alertTargets?: pulumi.Input<AlertSecrets>;
  /** The backup role's password (model/containers.ts BACKUP_DB_USER): uploaded as a pgpass file. */
  readonly backupDbPassword: pulumi.Input<string>;
  /** The stack's internal data network, where postgres is. */
  readonly dataNetwork: pulumi.Input<string>;
  /** With an external database: the network it is reached through, and its server's CA (PEM). */
  readonly databaseNetwork?: pulumi.Input<string>;
  readonly databaseCa?: string;
  /** With bucket media: the network its endpoint is reached through. */
  readonly mediaNetwork?: pulumi.Input<string>;
}

/** The backup role's pgpass file: any host, port and database of the stack's server, that role only. */
export function backupPassfile(password: pulumi.Input<string>): docker.types.input.ContainerUpload {
  return secretFile(
    BACKUP_DB_PASSFILE,
    pulumi.output(password).apply((p) => `*:*:*:${BACKUP_DB_USER}:${pgpassField(p)}\n`),
    "0400",
  );
}

/**
 * The volumes the scheduler mounts, and where: what a scheduled backup reads and writes, nothing more. The
 * media are read-only (but the mirror of bucket media, which a backup brings up to date); the dump is staged in the container's own layer (on disk, OPS_PATHS.stage, emptied
 * after each run and removed with the container).
 */
export function schedulerMounts(settings: Settings): LocalMounts {
  return {
    [settings.names.backupsVolume]: { path: OPS_PATHS.backups },
    // Bucket media: the volume is the bucket's mirror, which a backup first brings up to date.
    [settings.names.mediaVolume]: { path: OPS_PATHS.media, readOnly: !settings.media },
    ...(settings.media
      ? {
          [settings.names.mediaCredentialsVolume]: {
            path: OPS_PATHS.mediaCredentials,
            readOnly: true,
          },
        }
      : {}),
  };
}

/**
 * The alert targets as files in the container (model/containers.ts ALERT_TARGET_FILES): Apprise's text
 * config, one URL per line, and the webhook's URL. Only the files of targets that are set.
 */
export function alertTargetUploads(
  targets: pulumi.Input<AlertSecrets> | undefined,
  settings: Settings,
): docker.types.input.ContainerUpload[] {
  if (targets === undefined) {
    return [];
  }
  const resolved = pulumi.secret(pulumi.output(targets));
  const { apprise, webhook } = settings.alerts;
  return [
    ...(apprise?.length
      ? [
          secretFile(
            ALERT_TARGET_FILES.apprise,
            resolved.apply((t) => t.apprise.join("\n") + "\n"),
            "0400",
          ),
        ]
      : []),
    ...(webhook
      ? [
          secretFile(
            ALERT_TARGET_FILES.webhook,
            resolved.apply((t) => `${t.webhook}\n`),
            "0400",
          ),
        ]
      : []),
  ];
}

/**
 * What goes into the image, hashed: its tag changes exactly when the bundle, the Dockerfile or a base image
 * does, so the container (which names the tag) is replaced then and only then.
 */
export function schedulerImageTag(settings: Settings, bundle: Buffer, dockerfile: Buffer): string {
  const hash = createHash("sha256")
    .update(bundle)
    .update(dockerfile)
    .update(
      JSON.stringify([
        settings.backup.schedulerImage,
        settings.postgresImage,
        settings.backup.image,
        ...schedulerRclone(settings),
      ]),
    )
    .digest("hex")
    .slice(0, 12);
  return `${settings.namePrefix}-scheduler:${hash}`;
}

/**
 * Where the scheduler image's rclone comes from (bucket media only): `edms:media.image` and its binary. Other
 * stacks name no image, and the Dockerfile copies the restic binary it already has as its stand-in.
 */
function schedulerRclone(settings: Settings): string[] {
  return settings.media ? [settings.media.image, "/usr/local/bin/rclone"] : [];
}

/**
 * The environment of the scheduler container: what it acts on and how; never a secret. It has no engine
 * (ops/engine/engineless.ts): the deployer's `docker:host` means nothing there.
 */
export function schedulerEnvironment(settings: Settings): string[] {
  const onHost: Settings = { ...settings, dockerHost: undefined };
  return [
    `EDMS_STACK=${settings.stack}`,
    `EDMS_SETTINGS_JSON=${JSON.stringify(onHost)}`,
    "EDMS_ENGINE=none",
    `EDMS_MOUNTS=${JSON.stringify(schedulerMounts(settings))}`,
  ];
}

/** schedulerMounts as the container's volumes. */
function schedulerVolumes(settings: Settings): docker.types.input.ContainerVolume[] {
  return Object.entries(schedulerMounts(settings)).map(([volume, mount]) => ({
    volumeName: volume,
    containerPath: mount.path,
    readOnly: mount.readOnly ?? false,
  }));
}

/**
 * Its networks: the data network (postgres), and Docker's default bridge for the way out only when there is
 * somewhere to go (the off-host repository, alert targets). Never the front network with the proxy.
 */
export function schedulerNetworks(
  settings: Settings,
  dataNetwork: pulumi.Input<string>,
  databaseNetwork?: pulumi.Input<string>,
  mediaNetwork?: pulumi.Input<string>,
) {
  const egress = settings.backup.offsite !== undefined || alertTargetCount(settings.alerts) > 0;
  return [
    { name: dataNetwork },
    ...(databaseNetwork ? [{ name: databaseNetwork }] : []),
    ...(mediaNetwork ? [{ name: mediaNetwork }] : []),
    ...(egress ? [{ name: "bridge" }] : []),
  ];
}

/** The scheduler's image, built on the Docker host from the bundle (`npm run build`) and the stack's images. */
function schedulerImage(name: string, settings: Settings, parent: pulumi.Resource): docker.Image {
  const bundle = path.join(SCHEDULER_CONTEXT, SCHEDULER_BUNDLE);
  if (!fs.existsSync(bundle)) {
    throw new pulumi.ResourceError(
      `\`edms:backup.schedule\` needs the scheduler bundle ${path.relative(PROJECT_DIR, bundle)}, which is missing. Run \`npm run build\` (\`npm ci\` does it too), then retry.`,
      parent,
    );
  }
  const imageName = schedulerImageTag(
    settings,
    fs.readFileSync(bundle),
    fs.readFileSync(SCHEDULER_DOCKERFILE),
  );
  const [rclone, rcloneBinary] = schedulerRclone(settings);
  return new docker.Image(
    `${name}-image`,
    {
      imageName,
      skipPush: true,
      build: {
        context: SCHEDULER_CONTEXT,
        dockerfile: SCHEDULER_DOCKERFILE,
        args: {
          BASE: settings.backup.schedulerImage,
          POSTGRES: settings.postgresImage,
          RESTIC: settings.backup.image,
          ...(rclone ? { RCLONE: rclone, RCLONE_BINARY: rcloneBinary } : {}),
        },
      },
    },
    { parent },
  );
}

/**
 * `<prefix>-scheduler`: `edms-ops scheduler` in an image built on the Docker host, taking the backups of
 * `edms:backup.schedule` from the host itself (no CI runner involved). `restart: unless-stopped` brings it
 * back with the engine after a reboot, and it then catches up a due it missed. It has **no engine socket**:
 * it runs the backup itself (ops/engine/engineless.ts) with the backups volume, the media read-only, the
 * data network and the backup role (reads all data, writes none), and takes the stack's lock as flock(2) on
 * a file in the backups volume, which edms-ops' lock container takes too. Its secrets are the backup role's
 * pgpass file and the alert targets (`edms:alerts`), uploaded as root-only files; the repository password
 * and off-host credentials are already root-only files in the backups volume.
 */
export class Scheduler extends pulumi.ComponentResource {
  readonly image: docker.Image;
  readonly container: docker.Container;

  constructor(name: string, args: SchedulerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:Scheduler", name, {}, opts);
    const { settings } = args;
    this.image = schedulerImage(name, settings, this);
    const grace = containerReplacement("scheduler", settings.proxy.enabled).destroyGraceSeconds;
    this.container = stackContainer(
      name,
      {
        settings,
        role: "scheduler",
        networks: schedulerNetworks(
          settings,
          args.dataNetwork,
          args.databaseNetwork,
          args.mediaNetwork,
        ),
      },
      {
        name: settings.names.schedulerContainer,
        image: this.image.imageName,
        command: ["scheduler", "--stack", settings.stack],
        envs: schedulerEnvironment(settings),
        uploads: [
          backupPassfile(args.backupDbPassword),
          ...alertTargetUploads(args.alertTargets, settings),
          ...(args.databaseCa ? [secretFile(DATABASE_CA_FILE, args.databaseCa)] : []),
        ],
        volumes: schedulerVolumes(settings),
        // Time to record an interrupted backup in schedule.jsonl after `docker stop`.
        stopTimeout: grace,
        destroyGraceSeconds: grace,
      },
      { parent: this, ...CONTAINER_OPTIONS, dependsOn: args.after ?? [] },
    );
    this.registerOutputs({ id: this.container.id, image: this.image.imageName });
  }
}
