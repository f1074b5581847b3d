import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ALERT_TARGET_FILES } from "../model/containers";
import { CONTAINER_OPTIONS, containerReplacement } from "../model/protection";
import { AlertSecrets, Settings } from "../model/settings";
import { PROJECT_DIR } from "./hooks";
import { secretFile, stackContainer } from "./container";

/** Made by `npm run build` (scripts/bundle-scheduler.js): the image's build context. */
export const SCHEDULER_CONTEXT = path.join(PROJECT_DIR, "build", "scheduler");
export const SCHEDULER_BUNDLE = "edms-ops.cjs";
export const SCHEDULER_DOCKERFILE = path.join(PROJECT_DIR, "images", "scheduler", "Dockerfile");
/** Where the engine's socket is, on the Docker host and in the container. */
export const DOCKER_SOCKET = "/var/run/docker.sock";

export interface SchedulerArgs {
  readonly settings: Settings;
  /** Must have run before the container starts: the `backupInit` hook (repository keys on the host). */
  readonly after?: pulumi.Resource[];
  /** `edms:alerts` target URLs (secret): uploaded as root-only files, never env. */
  readonly alertTargets?: pulumi.Input<AlertSecrets>;
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
    .update(JSON.stringify([settings.backup.schedulerImage, settings.backup.dockerCliImage]))
    .digest("hex")
    .slice(0, 12);
  return `${settings.namePrefix}-scheduler:${hash}`;
}

/** The environment of the scheduler container: what it acts on and how; never a secret. */
export function schedulerEnvironment(settings: Settings): string[] {
  // It runs on the Docker host and talks to the local engine through the socket: the deployer's
  // `docker:host` (e.g. ssh://…) means nothing there.
  const onHost: Settings = { ...settings, dockerHost: undefined };
  return [`EDMS_STACK=${settings.stack}`, `EDMS_SETTINGS_JSON=${JSON.stringify(onHost)}`];
}

/**
 * `<prefix>-scheduler`: `edms-ops scheduler` in a small image built on the Docker host, taking the backups of
 * `edms:backup.schedule` from the host itself (no CI runner involved). `restart: unless-stopped` brings it
 * back with the engine after a reboot, and it then catches up a due it missed. It needs the engine's
 * socket (it starts the same helper containers as any edms-ops command). Its only secrets are the alert
 * targets (`edms:alerts`), uploaded as root-only files; the repository password and off-host credentials are
 * already root-only files in the backups volume.
 */
export class Scheduler extends pulumi.ComponentResource {
  readonly image: docker.Image;
  readonly container: docker.Container;

  constructor(name: string, args: SchedulerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:Scheduler", name, {}, opts);
    const { settings } = args;
    const bundle = path.join(SCHEDULER_CONTEXT, SCHEDULER_BUNDLE);
    if (!fs.existsSync(bundle)) {
      throw new pulumi.ResourceError(
        `\`edms:backup.schedule\` needs the scheduler bundle ${path.relative(PROJECT_DIR, bundle)}, which is missing. Run \`npm run build\` (\`npm ci\` does it too), then retry.`,
        this,
      );
    }
    const imageName = schedulerImageTag(
      settings,
      fs.readFileSync(bundle),
      fs.readFileSync(SCHEDULER_DOCKERFILE),
    );
    this.image = new docker.Image(
      `${name}-image`,
      {
        imageName,
        skipPush: true,
        build: {
          context: SCHEDULER_CONTEXT,
          dockerfile: SCHEDULER_DOCKERFILE,
          args: {
            BASE: settings.backup.schedulerImage,
            DOCKER_CLI: settings.backup.dockerCliImage,
          },
        },
      },
      { parent: this },
    );
    const grace = containerReplacement("scheduler", settings.proxy.enabled).destroyGraceSeconds;
    this.container = stackContainer(
      name,
      { settings, role: "scheduler" },
      {
        name: settings.names.schedulerContainer,
        image: this.image.imageName,
        command: ["scheduler", "--stack", settings.stack],
        envs: schedulerEnvironment(settings),
        uploads: alertTargetUploads(args.alertTargets, settings),
        // Read-only stops nothing a socket allows, but keeps the mount from being written as a file.
        volumes: [{ hostPath: DOCKER_SOCKET, containerPath: DOCKER_SOCKET, readOnly: true }],
        // Time to record an interrupted backup in schedule.jsonl after `docker stop`.
        stopTimeout: grace,
        destroyGraceSeconds: grace,
      },
      { parent: this, ...CONTAINER_OPTIONS, dependsOn: args.after ?? [] },
    );
    this.registerOutputs({ id: this.container.id, image: this.image.imageName });
  }
}
