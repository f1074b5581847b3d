/**
 * Media in a bucket (`edms:media`): the stack's media volume is then edms-ops' mirror of the bucket's prefix,
 * and everything else (restic's snapshot, counts, verify, the drill) works on that mirror as on a media volume.
 *
 * - A backup first **pulls** (`rclone sync bucket → mirror`): only new or changed objects are fetched (size
 *   and modification time), deleted ones go from the mirror. restic then backs the mirror up incrementally.
 * - A restore brings the mirror to the snapshot (restic), then **pushes** (`rclone sync mirror → bucket`):
 *   changed and deleted objects come back, objects added since are deleted, and `rclone check` compares both.
 * - A staging reset **empties the prefix** (`rclone delete`), never the bucket or another prefix.
 *
 * rclone runs from `edms:media.image` with the mirror, the credentials volume (its config with the key,
 * written by `backups init`) and the media network; in the scheduler (no engine) its own copy runs with
 * the same mounts.
 */
import {
  BucketMedia,
  bucketMedia,
  mediaDescription,
  s3CredentialsFile,
  Settings,
} from "../../model/settings";
import { failure, refuse } from "../core/errors";
import { lastLine, progress } from "../core/log";
import { docker, run, RunResult, volumeExists } from "../engine/docker";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { engineless, localMounts } from "../engine/engineless";
import { OPS_PATHS, SCHEDULER_RCLONE } from "../../model/containers";
import { OPS_HELPER_ROLE } from "../store/restic";

/** Where rclone has the credentials volume and the mirror: the scheduler's paths (OPS_PATHS) everywhere. */
const MEDIA_CREDENTIALS_DIR = OPS_PATHS.mediaCredentials;
const MIRROR_DIR = OPS_PATHS.media;
const CONFIG = "rclone.conf";
/** The remote's name in the config file. */
const REMOTE = "bucket";

/** rclone's config for the bucket: S3 with path-style requests, the bucket never created by rclone. */
export function rcloneConfig(media: BucketMedia, secretKey: string): string {
  return [
    `[${REMOTE}]`,
    "type = s3",
    "provider = Other",
    `access_key_id = ${media.accessKeyId}`,
    `secret_access_key = ${secretKey}`,
    `endpoint = ${media.endpoint.replace(/\/$/, "")}`,
    `region = ${media.region}`,
    "force_path_style = true",
    "no_check_bucket = true",
    "",
  ].join("\n");
}

/** The stack's folder of the bucket as an rclone path: never the bucket's root (prefix is never empty). */
export function bucketPath(media: BucketMedia): string {
  return `${REMOTE}:${media.bucket}/${media.prefix}`;
}

function requireBucket(settings: Settings): BucketMedia {
  const media = bucketMedia(settings);
  if (!media) {
    throw failure(
      `stack ${settings.stack} keeps its media in a volume, not a bucket`,
      `Check \`edms:media\` in Pulumi.${settings.stack}.yaml, then run the command again.`,
    );
  }
  return media;
}

/**
 * With bucket media and its secret key in EDMS_MEDIA_SECRET_KEY: writes rclone's config to the credentials
 * volume (root-only), as a tar stream on stdin. False when there is nothing to write.
 */
export async function storeMediaCredentials(
  settings: Settings,
  env: NodeJS.ProcessEnv = process.env,
): Promise<boolean> {
  const media = bucketMedia(settings);
  const key = env.EDMS_MEDIA_SECRET_KEY;
  if (!media || !key) {
    return false;
  }
  if (/[\r\n]/.test(key)) {
    throw refuse(
      "EDMS_MEDIA_SECRET_KEY holds a line break, which no credentials file can hold. Nothing was changed.",
      "Set the bucket key's secret without one (`pulumi config set --secret --path edms:media.secretAccessKey <key>`), then run `pulumi up` again.",
    );
  }
  const volume = settings.names.mediaCredentialsVolume;
  if (!(await volumeExists(volume))) {
    throw refuse(
      `The credentials volume ${volume} of stack ${settings.stack}'s bucket does not exist. Nothing was changed.`,
      `Deploy the stack (\`pulumi up --stack ${settings.stack}\`): it creates the volume and writes it.`,
    );
  }
  // Written beside, then renamed: a copy running meanwhile reads the old config or the new one.
  const script = `umask 077; cd ${MEDIA_CREDENTIALS_DIR}; cat > .${CONFIG}.new; mv .${CONFIG}.new ${CONFIG}; sync`;
  const result = await docker(
    dockerRunArgs({
      image: settings.postgresImage,
      entrypoint: "sh",
      args: ["-euc", script],
      remove: true,
      stdin: true,
      logging: false,
      network: "none",
      user: "0",
      labels: opsLabels(settings, OPS_HELPER_ROLE),
      mounts: [{ volume, path: MEDIA_CREDENTIALS_DIR }],
      limits: settings.limits.helpers,
    }),
    {
      input: rcloneConfig(media, key),
      allowFailure: true,
    },
  );
  if (result.code !== 0) {
    throw failure(
      `could not write the bucket's credentials to ${volume}: ${lastLine(result.stderr)}`,
      `Check the Docker host's disk and the volume (\`docker volume inspect ${volume}\`), then run \`pulumi up --stack ${settings.stack}\` again.`,
    );
  }
  return true;
}

/**
 * boto3's credentials file for a one-off Django container (a hook has no key in its environment but
 * `backups init`'s): made from the rclone config in the credentials volume, never printed.
 */
export async function readS3Credentials(settings: Settings): Promise<string> {
  const volume = settings.names.mediaCredentialsVolume;
  const result = await docker(
    dockerRunArgs({
      image: settings.postgresImage,
      entrypoint: "sh",
      args: ["-euc", `cat ${MEDIA_CREDENTIALS_DIR}/${CONFIG}`],
      remove: true,
      logging: false,
      network: "none",
      user: "0",
      labels: opsLabels(settings, OPS_HELPER_ROLE),
      mounts: [{ volume, path: MEDIA_CREDENTIALS_DIR, readOnly: true }],
      limits: settings.limits.helpers,
    }),
    { allowFailure: true },
  );
  const value = (key: string) => new RegExp(`^${key} = (.+)$`, "m").exec(result.stdout)?.[1];
  const [id, secret] = [value("access_key_id"), value("secret_access_key")];
  if (result.code !== 0 || !id || !secret) {
    throw failure(
      `The bucket's credentials are not readable in ${volume}.`,
      `Write them again: run \`pulumi up --stack ${settings.stack}\` (its \`backups init\` writes them when the key changes or on a new host).`,
    );
  }
  return s3CredentialsFile(id, secret);
}

/** The network rclone reaches the endpoint through. */
export function mediaNetwork(settings: Settings, media: BucketMedia): string {
  return media.network ?? settings.names.mediaNetwork;
}

/**
 * Runs rclone with the bucket's config, and the mirror at MIRROR_DIR when `mirror` says (`write` for a pull;
 * never otherwise: a reset runs it once the volume is gone, which a mount would create again). Its output is
 * returned; a failure throws with rclone's last line.
 */
async function rclone(
  settings: Settings,
  args: readonly string[],
  what: string,
  options: { readonly mirror?: "read" | "write"; readonly allowFailure?: boolean } = {},
): Promise<RunResult> {
  const media = requireBucket(settings);
  const n = settings.names;
  const common = ["--config", `${MEDIA_CREDENTIALS_DIR}/${CONFIG}`, "--retries", "3"];
  let result: RunResult;
  if (engineless()) {
    const here = localMounts();
    if (here[n.mediaCredentialsVolume]?.path !== MEDIA_CREDENTIALS_DIR) {
      throw failure(
        `${what} needs the bucket's credentials volume ${n.mediaCredentialsVolume}, which this scheduler does not mount.`,
        `Run \`pulumi up --stack ${settings.stack}\`: the scheduler is recreated with it.`,
      );
    }
    result = await run(SCHEDULER_RCLONE, [...common, ...args], { allowFailure: true });
  } else {
    if (!(await volumeExists(n.mediaCredentialsVolume))) {
      throw failure(
        `The bucket's credentials volume ${n.mediaCredentialsVolume} is missing, so ${what} cannot reach ${mediaDescription(media)}.`,
        `Run \`pulumi up --stack ${settings.stack}\` (its \`backups init\` writes it), then retry.`,
      );
    }
    result = await docker(
      dockerRunArgs({
        image: media.image,
        entrypoint: "rclone",
        args: [...common, ...args],
        remove: true,
        logging: false,
        network: mediaNetwork(settings, media),
        user: "0",
        labels: opsLabels(settings, OPS_HELPER_ROLE),
        mounts: [
          { volume: n.mediaCredentialsVolume, path: MEDIA_CREDENTIALS_DIR, readOnly: true },
          ...(options.mirror
            ? [{ volume: n.mediaVolume, path: MIRROR_DIR, readOnly: options.mirror === "read" }]
            : []),
        ],
        limits: settings.limits.helpers,
      }),
      { allowFailure: true },
    );
  }
  if (result.code !== 0 && !options.allowFailure) {
    throw failure(
      `${what} failed against ${mediaDescription(media)}: ${lastLine(result.stderr)}`,
      `Check that the endpoint answers from the Docker host and that the key may list, read, write and delete under ${media.prefix}/ (\`edms-ops health --stack ${settings.stack}\`), then retry.`,
    );
  }
  return result;
}

/** The mirror brought to the bucket's prefix: new and changed objects fetched, deleted ones removed. */
export async function pullBucket(settings: Settings): Promise<void> {
  const media = requireBucket(settings);
  progress(
    `copying ${mediaDescription(media)} into the mirror ${settings.names.mediaVolume} (only what changed)`,
  );
  await rclone(
    settings,
    ["sync", bucketPath(media), MIRROR_DIR, "--fast-list", "--transfers", "8"],
    "copying the bucket",
    {
      mirror: "write",
    },
  );
}

/**
 * The bucket's prefix brought to the mirror (which a restore just brought to the snapshot): changed and
 * missing objects uploaded, objects the snapshot lacks deleted; then both compared (sizes, and MD5 where the
 * server has one: a multipart object's ETag is none).
 */
export async function pushBucket(settings: Settings): Promise<void> {
  const media = requireBucket(settings);
  progress(`bringing ${mediaDescription(media)} back to the restored media`);
  await rclone(
    settings,
    ["sync", MIRROR_DIR, bucketPath(media), "--fast-list", "--transfers", "8"],
    "restoring the bucket",
    {
      mirror: "read",
    },
  );
  const check = await rclone(
    settings,
    ["check", MIRROR_DIR, bucketPath(media), "--fast-list"],
    "checking the bucket",
    {
      mirror: "read",
      allowFailure: true,
    },
  );
  if (check.code !== 0) {
    throw failure(
      `the bucket differs from the restored media after the copy: ${lastLine(check.stderr)}`,
      `Run the restore again (\`edms-ops restore <id> --stack ${settings.stack}\`): it copies what differs.`,
    );
  }
}

/** Deletes every object under the stack's prefix (a staging reset): never another prefix or the bucket. */
export async function emptyBucketPrefix(settings: Settings): Promise<void> {
  const media = requireBucket(settings);
  progress(`emptying ${mediaDescription(media)}`);
  await rclone(
    settings,
    ["delete", bucketPath(media), "--fast-list"],
    "emptying the bucket's prefix",
  );
}

/** `status`: the prefix listed with edms-ops' own config, named as status lists it, and why not. */
export async function bucketCheck(
  settings: Settings,
): Promise<{ readonly name: string; readonly ok: boolean; readonly detail: string }> {
  const media = requireBucket(settings);
  const name = `media ${mediaDescription(media)}`;
  try {
    const listed = await rclone(
      settings,
      ["lsf", bucketPath(media), "--max-depth", "1", "--contimeout", "5s", "--timeout", "10s"],
      "listing the bucket",
      { allowFailure: true },
    );
    const ok = listed.code === 0;
    return { name, ok, detail: ok ? "ok" : lastLine(listed.stderr) || `exit ${listed.code}` };
  } catch (err) {
    // No credentials volume (a new host before its deploy): said, not thrown.
    return { name, ok: false, detail: (err as Error).message.split("\n")[0] };
  }
}

/**
 * A stack whose media volume holds the app's files is not switched to `edms:media` by a deploy: the volume
 * becomes the bucket's mirror, and the first backup's copy would delete from it every file the bucket
 * lacks. Refused at `backups init`, the deploy's first hook, before anything is written. A volume that is
 * already the mirror (the credentials volume has the config) or that is empty (a new host) goes ahead.
 */
export async function refuseSwitchOverVolumeMedia(settings: Settings): Promise<void> {
  const media = bucketMedia(settings);
  const n = settings.names;
  if (!media || !(await volumeExists(n.mediaVolume))) {
    return;
  }
  const hasCredentials = await volumeExists(n.mediaCredentialsVolume);
  const probe = await docker(
    dockerRunArgs({
      image: settings.postgresImage,
      entrypoint: "sh",
      args: [
        "-euc",
        `[ -f ${MEDIA_CREDENTIALS_DIR}/${CONFIG} ] && echo mirror; find ${MIRROR_DIR} -mindepth 1 -type f ! -name '.health-*' | head -n 1`,
      ],
      remove: true,
      logging: false,
      network: "none",
      user: "0",
      labels: opsLabels(settings, OPS_HELPER_ROLE),
      mounts: [
        { volume: n.mediaVolume, path: MIRROR_DIR, readOnly: true },
        ...(hasCredentials
          ? [{ volume: n.mediaCredentialsVolume, path: MEDIA_CREDENTIALS_DIR, readOnly: true }]
          : []),
      ],
      limits: settings.limits.helpers,
    }),
  );
  const [first] = probe.stdout.split("\n");
  if (first === "mirror" || probe.stdout.trim() === "") {
    return;
  }
  throw refuse(
    `Stack ${settings.stack}'s media volume ${n.mediaVolume} holds the app's files: with \`edms:media\` it would become the mirror of ${mediaDescription(media)}, and the next backup would delete from it every file the bucket lacks. Nothing was changed.`,
    `Copy the files into the bucket first (e.g. \`rclone copy\` of the volume to ${media.bucket}/${media.prefix}, keeping their paths), take a backup, then deploy again; or remove \`edms:media\` to keep the media in the volume.`,
  );
}
