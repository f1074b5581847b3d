/**
 * Bucket media's credentials and the deploy's guard (bucket.ts has the copies): rclone's config written to the
 * credentials volume by `backups init`, boto3's file for one-off Django containers made from it, and the
 * refusal to turn a volume of the app's files into the bucket's mirror.
 */
import { bucketMedia, mediaDescription, s3CredentialsFile, Settings } from "../../model/settings";
import { failure, refuse } from "../core/errors";
import { lastLine } from "../core/log";
import { volumeExists } from "../engine/docker";
import { toolbox } from "../engine/toolbox";
import { requireCredentialsVolume } from "../database/credentials";
import { CONFIG, MEDIA_CREDENTIALS_DIR, MIRROR_DIR, rcloneConfig } from "./bucket";

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
  await requireCredentialsVolume(settings, volume, "bucket");
  // Written beside, then renamed: a copy running meanwhile reads the old config or the new one.
  const script = `umask 077; cd ${MEDIA_CREDENTIALS_DIR}; cat > .${CONFIG}.new; mv .${CONFIG}.new ${CONFIG}; sync`;
  const result = await toolbox(settings, [{ volume, path: MEDIA_CREDENTIALS_DIR }], script, {
    input: rcloneConfig(media, key),
    allowFailure: true,
  });
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
  const mount = { volume, path: MEDIA_CREDENTIALS_DIR, readOnly: true };
  const result = await toolbox(settings, [mount], `cat ${MEDIA_CREDENTIALS_DIR}/${CONFIG}`, {
    allowFailure: true,
  });
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
  const probe = await toolbox(
    settings,
    [
      { volume: n.mediaVolume, path: MIRROR_DIR, readOnly: true },
      ...(hasCredentials
        ? [{ volume: n.mediaCredentialsVolume, path: MEDIA_CREDENTIALS_DIR, readOnly: true }]
        : []),
    ],
    `[ -f ${MEDIA_CREDENTIALS_DIR}/${CONFIG} ] && echo mirror; find ${MIRROR_DIR} -mindepth 1 -type f ! -name '.health-*' | head -n 1`,
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
