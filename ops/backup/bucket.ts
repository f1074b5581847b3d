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
import { BucketMedia, bucketMedia, mediaDescription, Settings } from "../../model/settings";
import { failure, refuse } from "../core/errors";
import { lastLine, progress } from "../core/log";
import { docker, run, RunResult, volumeExists } from "../engine/docker";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { engineless, localMounts } from "../engine/engineless";
import { OPS_PATHS, SCHEDULER_RCLONE } from "../../model/containers";
import { OPS_HELPER_ROLE } from "../store/restic";
import { parseJson } from "../core/json";
import { z } from "zod";

/** The objects `rclone lsjson` lists (only the fields read). */
const ClaimListingSchema = z.array(z.looseObject({ Path: z.string(), Size: z.number() }));

/** Where rclone has the credentials volume and the mirror: the scheduler's paths (OPS_PATHS) everywhere. */
export const MEDIA_CREDENTIALS_DIR = OPS_PATHS.mediaCredentials;
export const MIRROR_DIR = OPS_PATHS.media;
export const CONFIG = "rclone.conf";
/** The endpoint's CA (`edms:media.caCertificateFile`) beside it, for `--ca-cert`. */
export const MEDIA_CA = "ca.crt";
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

export function requireBucket(settings: Settings): BucketMedia {
  const media = bucketMedia(settings);
  if (!media) {
    throw failure(
      `stack ${settings.stack} keeps its media in a volume, not a bucket`,
      `Check \`edms:media\` in Pulumi.${settings.stack}.yaml, then run the command again.`,
    );
  }
  return media;
}

/** The network rclone reaches the endpoint through. */
export function mediaNetwork(settings: Settings, media: BucketMedia): string {
  return media.network ?? settings.names.mediaNetwork;
}

/** rclone in a container of `media.image` on the media network, with the credentials (and the mirror). */
function rcloneContainer(
  settings: Settings,
  media: BucketMedia,
  args: readonly string[],
  options: { readonly mirror?: "read" | "write"; readonly input?: string },
): Promise<RunResult> {
  const n = settings.names;
  return docker(
    dockerRunArgs({
      image: media.image,
      entrypoint: "rclone",
      args,
      remove: true,
      stdin: options.input !== undefined,
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
    { allowFailure: true, input: options.input },
  );
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
  options: {
    readonly mirror?: "read" | "write";
    readonly allowFailure?: boolean;
    readonly input?: string;
  } = {},
): Promise<RunResult> {
  const media = requireBucket(settings);
  const n = settings.names;
  const common = [
    ...["--config", `${MEDIA_CREDENTIALS_DIR}/${CONFIG}`, "--retries", "3"],
    ...(media.caCertificateFile ? ["--ca-cert", `${MEDIA_CREDENTIALS_DIR}/${MEDIA_CA}`] : []),
  ];
  let result: RunResult;
  if (engineless()) {
    const here = localMounts();
    if (here[n.mediaCredentialsVolume]?.path !== MEDIA_CREDENTIALS_DIR) {
      throw failure(
        `${what} needs the bucket's credentials volume ${n.mediaCredentialsVolume}, which this scheduler does not mount.`,
        `Run \`pulumi up --stack ${settings.stack}\`: the scheduler is recreated with it.`,
      );
    }
    result = await run(SCHEDULER_RCLONE, [...common, ...args], {
      allowFailure: true,
      input: options.input,
    });
  } else {
    if (!(await volumeExists(n.mediaCredentialsVolume))) {
      throw failure(
        `The bucket's credentials volume ${n.mediaCredentialsVolume} is missing, so ${what} cannot reach ${mediaDescription(media)}.`,
        `Run \`pulumi up --stack ${settings.stack}\` (its \`backups init\` writes it), then retry.`,
      );
    }
    // A mount would create a missing mirror, unlabelled and empty: a push from it would empty the prefix.
    if (options.mirror && !(await volumeExists(n.mediaVolume))) {
      throw failure(
        `The media volume ${n.mediaVolume} (the mirror of ${mediaDescription(media)}) is missing, so ${what} cannot run.`,
        `Run \`pulumi up --stack ${settings.stack}\` to create it, then retry.`,
      );
    }
    result = await rcloneContainer(settings, media, [...common, ...args], options);
  }
  if (result.code !== 0 && !options.allowFailure) {
    throw failure(
      `${what} failed against ${mediaDescription(media)}: ${lastLine(result.stderr)}`,
      `Check that the endpoint answers from the Docker host and that the key may list, read, write and delete under ${media.prefix}/ (\`edms-ops status --stack ${settings.stack}\` lists the bucket), then retry.`,
    );
  }
  return result;
}

/**
 * The stack's claim on its prefix: an object `<prefix>/.edms-stack` holding the stack's name, written by
 * `backups init`. Copies, restores and resets leave it alone; a restore or a reset that finds another stack's
 * claim at its prefix, or one inside it (a prefix nested in this one), is refused: its sync or delete would
 * remove that stack's objects.
 */
const CLAIM = ".edms-stack";
const NOT_THE_CLAIM = ["--exclude", `/${CLAIM}`];

/** What `backups init` writes into a claim: a stack's name (as ops/core/stack.ts checks it) and a newline. */
const CLAIMED_BY = /^([A-Za-z0-9_.-]{1,100})\n?$/;
const CLAIM_MAX_BYTES = 102;

/** The stack a claim names, or undefined when the object is no claim (e.g. an upload of that name). */
async function claimant(settings: Settings, media: BucketMedia, path: string) {
  const read = await rclone(settings, ["cat", `${bucketPath(media)}/${path}`], "reading a claim");
  return CLAIMED_BY.exec(read.stdout)?.[1];
}

/**
 * The other stacks' claims inside the prefix (their folders, relative to it), and the stack named by the
 * claim at it. An object of that name that is larger than a claim or holds something else is a document
 * (an app's upload may be called anything) and does not count: nor does a claim of this stack's own.
 */
async function prefixClaims(settings: Settings, media: BucketMedia) {
  const listed = await rclone(
    settings,
    ["lsjson", "-R", "--files-only", "--include", CLAIM, "--fast-list", bucketPath(media)],
    "listing the bucket's claims",
  );
  const found = parseJson(listed.stdout || "[]", ClaimListingSchema, "rclone lsjson's listing");
  const small = found.filter((object) => object.Size <= CLAIM_MAX_BYTES).map((o) => o.Path);
  const nested: string[] = [];
  let owner: string | undefined;
  for (const path of small) {
    const stack = await claimant(settings, media, path);
    if (path === CLAIM) {
      owner = stack;
    } else if (stack !== undefined && stack !== settings.stack) {
      nested.push(path.slice(0, -CLAIM.length - 1));
    }
  }
  return { nested, owner };
}

/** Refuses `what` while another stack claims the prefix or a prefix inside it. */
export async function requireOwnPrefix(settings: Settings, what: string): Promise<BucketMedia> {
  const media = requireBucket(settings);
  const { nested, owner } = await prefixClaims(settings, media);
  const others = [
    ...(owner !== undefined && owner !== settings.stack
      ? [`${media.prefix} (stack ${owner})`]
      : []),
    ...nested.map((folder) => `${media.prefix}/${folder}`),
  ];
  if (others.length > 0) {
    throw refuse(
      `${mediaDescription(media)} is not stack ${settings.stack}'s alone: another stack keeps its media at ${others.join(", ")}, and ${what} would replace or delete its objects. Nothing was changed.`,
      "Give each stack a prefix of its own, none inside another's (`edms:media.prefix`), and move the objects there; then retry.",
    );
  }
  return media;
}

/** `backups init`: the prefix claimed for this stack, refused when another stack has it or one inside it. */
export async function claimPrefix(settings: Settings): Promise<void> {
  const media = await requireOwnPrefix(settings, "this stack's restores and resets");
  await rclone(settings, ["rcat", `${bucketPath(media)}/${CLAIM}`], "claiming the prefix", {
    input: `${settings.stack}\n`,
  });
}

/** The mirror brought to the bucket's prefix: new and changed objects fetched, deleted ones removed. */
export async function pullBucket(settings: Settings): Promise<void> {
  const media = requireBucket(settings);
  progress(
    `copying ${mediaDescription(media)} into the mirror ${settings.names.mediaVolume} (only what changed)`,
  );
  await rclone(
    settings,
    // --use-server-modtime: the listing's LastModified, not a HEAD per object for rclone's own mtime (which
    // objects the app uploads do not carry, so rclone fell back to LastModified anyway): 3,000 unchanged
    // objects on radosgw 1.3 s instead of 4.8 s. Objects a restore pushed have a newer LastModified than the
    // mirror's files: the next pull compares (or fetches) them once.
    [
      ...["sync", bucketPath(media), MIRROR_DIR, ...NOT_THE_CLAIM, "--fast-list"],
      ...["--transfers", "8", "--use-server-modtime"],
    ],
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
  // Again at the copy: a restore's database stage can take minutes, and a claim written meanwhile still stops it.
  await requireOwnPrefix(settings, "the restore");
  progress(`bringing ${mediaDescription(media)} back to the restored media`);
  await rclone(
    settings,
    ["sync", MIRROR_DIR, bucketPath(media), ...NOT_THE_CLAIM, "--fast-list", "--transfers", "8"],
    "restoring the bucket",
    {
      mirror: "read",
    },
  );
  const check = await rclone(
    settings,
    ["check", MIRROR_DIR, bucketPath(media), ...NOT_THE_CLAIM, "--fast-list"],
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
  await requireOwnPrefix(settings, "the reset");
  progress(`emptying ${mediaDescription(media)}`);
  await rclone(
    settings,
    ["delete", bucketPath(media), ...NOT_THE_CLAIM, "--fast-list"],
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
