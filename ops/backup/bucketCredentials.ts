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
import { CONFIG, MEDIA_CA, MEDIA_CREDENTIALS_DIR, MIRROR_DIR, rcloneConfig } from "./bucket";

/** Between rclone's config and the CA, on stdin and in the read-back (no line of either is this). */
export const CA_SEPARATOR = "#--edms-media-ca--";

/**
 * Shell (busybox's too) writing rclone's config and the CA after CA_SEPARATOR from stdin into `dir`: each
 * written beside, then renamed, so a copy running meanwhile reads the old file or the new one; no CA, none kept.
 */
export function storeCredentialsScript(dir: string): string {
  return [
    `umask 077; cd '${dir}'`,
    `awk 'BEGIN { f = ".${CONFIG}.new" } $0 == "${CA_SEPARATOR}" { f = ".${MEDIA_CA}.new"; next } { print > f }'`,
    `if [ -s .${MEDIA_CA}.new ]; then mv .${MEDIA_CA}.new ${MEDIA_CA}; else rm -f ${MEDIA_CA} .${MEDIA_CA}.new; fi`,
    `mv .${CONFIG}.new ${CONFIG}; sync`,
  ].join("; ");
}

/** Shell printing the config, CA_SEPARATOR and the CA (if any) of `dir`, for splitCredentials. */
export function readCredentialsScript(dir: string): string {
  return `cd '${dir}'; cat ${CONFIG}; echo '${CA_SEPARATOR}'; cat ${MEDIA_CA} 2>/dev/null || true`;
}

/** readCredentialsScript's output: the config and the CA ("" when none, or when the output is cut). */
export function splitCredentials(stdout: string): { readonly config: string; readonly ca: string } {
  const at = stdout.lastIndexOf(`${CA_SEPARATOR}\n`);
  return at < 0
    ? { config: "", ca: "" }
    : { config: stdout.slice(0, at), ca: stdout.slice(at + CA_SEPARATOR.length + 1) };
}

/**
 * With bucket media and its secret key in EDMS_MEDIA_SECRET_KEY: writes rclone's config to the credentials
 * volume (root-only), on stdin, and beside it the endpoint's CA from EDMS_MEDIA_CA (removed when none is
 * configured any more). False when there is nothing to write.
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
  const ca = media.caCertificateFile ? env.EDMS_MEDIA_CA : undefined;
  if (media.caCertificateFile && !ca?.includes("-----BEGIN CERTIFICATE-----")) {
    throw refuse(
      "`edms:media.caCertificateFile` is set but EDMS_MEDIA_CA holds no -----BEGIN CERTIFICATE----- block. Nothing was changed.",
      "Run `pulumi up`, which passes the CA's file to `backups init`, or export the CA's PEM text in EDMS_MEDIA_CA.",
    );
  }
  const volume = settings.names.mediaCredentialsVolume;
  await requireCredentialsVolume(settings, volume, "bucket");
  const script = storeCredentialsScript(MEDIA_CREDENTIALS_DIR);
  const result = await toolbox(settings, [{ volume, path: MEDIA_CREDENTIALS_DIR }], script, {
    input: rcloneConfig(media, key) + (ca ? `${CA_SEPARATOR}\n${ca}` : ""),
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
 * `backups init`'s), made from the rclone config in the credentials volume, and the endpoint's CA when one
 * is configured: never printed.
 */
export async function readS3Credentials(
  settings: Settings,
): Promise<{ readonly credentials: string; readonly ca?: string }> {
  const volume = settings.names.mediaCredentialsVolume;
  const mount = { volume, path: MEDIA_CREDENTIALS_DIR, readOnly: true };
  const script = readCredentialsScript(MEDIA_CREDENTIALS_DIR);
  const result = await toolbox(settings, [mount], script, { allowFailure: true });
  const { config, ca } = splitCredentials(result.stdout);
  const value = (key: string) => new RegExp(`^${key} = (.+)$`, "m").exec(config)?.[1];
  const [id, secret] = [value("access_key_id"), value("secret_access_key")];
  const caMissing = bucketMedia(settings)?.caCertificateFile !== undefined && !ca;
  if (result.code !== 0 || !id || !secret || caMissing) {
    throw failure(
      `The bucket's credentials${caMissing ? " and the endpoint's CA" : ""} are not readable in ${volume}.`,
      `Write them again: run \`pulumi up --stack ${settings.stack}\` (its \`backups init\` writes them when the key changes or on a new host).`,
    );
  }
  return { credentials: s3CredentialsFile(id, secret), ...(ca ? { ca } : {}) };
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
