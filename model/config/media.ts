/**
 * `edms:media`: the stack's uploaded documents in an S3-compatible bucket (AWS S3, Ceph, MinIO, …) instead of
 * the media volume. Its secret key reaches the program as a Pulumi secret (`mediaSecretKey`); Settings, which
 * travel as plain JSON (hooks' env, the scheduler's), keep the rest.
 */
import { z } from "zod";
import { maybeSecret, nonEmpty, parseJsonish, pemFile, setting } from "./fields";

/** S3's bucket naming rule (3–63 lowercase letters, digits, dots and hyphens, a letter or digit at each end). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** http(s)://host[:port], nothing after it: a DNS name or an IPv4 address. */
const ENDPOINT =
  /^https?:\/\/[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::\d{1,5})?\/?$/;
const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Segments of letters, digits, `.`, `_` and `-` (none of them `.` or `..`) joined by single slashes. */
const PREFIX = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;
const ACCESS_KEY = /^[A-Za-z0-9+/=_.-]{1,128}$/;
const NETWORK = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** An image reference: name[:tag][@digest]. */
const IMAGE = /^[a-z0-9][a-z0-9._\/:-]*(@sha256:[0-9a-f]{64})?$/;

/** rclone's official image: the binary at /usr/local/bin/rclone, the entrypoint rclone. */
export const DEFAULT_RCLONE_IMAGE = "rclone/rclone:1.69.1";

export const MEDIA_FIX =
  "e.g. `{backend: s3, bucket: edms-documents, endpoint: https://s3.eu-central-1.amazonaws.com, region: eu-central-1, prefix: edms-prod, accessKeyId: AKIA…}` and `pulumi config set --secret --path edms:media.secretAccessKey <key>`";

export const mediaSchema = z
  .object(
    {
      backend: setting(
        z.enum(["s3"], {
          error:
            "media.backend must be s3 (leave edms:media out to keep media in the stack's volume)",
        }),
        { description: "s3: the media live in an S3-compatible bucket." },
      ),
      bucket: setting(
        nonEmpty("a bucket name (media.bucket)").regex(
          BUCKET,
          "media.bucket must be an S3 bucket name (3–63 lowercase letters, digits, . and -)",
        ),
        { description: "The bucket; it must exist. The stack writes only under `prefix` in it." },
      ),
      endpoint: setting(
        nonEmpty("a URL (media.endpoint)").regex(
          ENDPOINT,
          "media.endpoint must be http(s)://host[:port] with nothing after it",
        ),
        {
          description:
            "The S3 endpoint, e.g. https://s3.eu-central-1.amazonaws.com; path-style requests. Production needs https.",
        },
      ),
      region: setting(
        z
          .string({ error: "media.region must be a region name" })
          .regex(REGION, "media.region must be a region name (lowercase letters, digits, -)")
          .default("us-east-1"),
        { description: "The bucket's region (default us-east-1; most other servers accept any)." },
      ),
      prefix: setting(
        z
          .string({ error: "media.prefix must be a key prefix" })
          .regex(
            PREFIX,
            "media.prefix must be segments of letters, digits, . _ - joined by / (no leading or trailing /, no . or .. segment)",
          )
          .optional(),
        {
          description:
            "The folder of keys the stack owns in the bucket (default: edms:namePrefix). Backups copy it, restores bring it back exactly, a staging reset empties it; nothing outside it is read or changed.",
        },
      ),
      accessKeyId: setting(
        nonEmpty("an access key id (media.accessKeyId)").regex(
          ACCESS_KEY,
          "media.accessKeyId must be an access key id (letters, digits, + / = _ . -)",
        ),
        {
          description:
            "The access key id of a key that may list, read, write and delete under prefix.",
        },
      ),
      secretAccessKey: setting(
        maybeSecret("a secret key (media.secretAccessKey)").refine(
          (v) => typeof v !== "string",
          "media.secretAccessKey is in plain text: set it with `pulumi config set --secret --path edms:media.secretAccessKey <key>`",
        ),
        { description: "Its secret key; set with `--secret`.", secret: true },
      ),
      caCertificateFile: setting(pemFile("media.caCertificateFile").optional(), {
        description:
          "The PEM file of the CA that signed the endpoint's certificate, when no public CA did (an on-premises Ceph or MinIO): web, worker, the one-off Django containers and edms-ops' rclone trust it for the endpoint. Needs an https:// endpoint.",
      }),
      network: setting(
        z
          .string({ error: "media.network must be a Docker network name" })
          .regex(NETWORK, "media.network must be a Docker network name")
          .refine(
            (n) => !["host", "none"].includes(n),
            "media.network cannot be `host` or `none`: name a network the endpoint is reached through",
          )
          .optional(),
        {
          description:
            "An existing Docker network the endpoint is reached through (an S3 server in a container on this host). Without it the stack's own `<prefix>-media` network (a bridge with a gateway) carries the requests.",
        },
      ),
      image: setting(
        z
          .string({ error: "media.image must be an image reference" })
          .regex(IMAGE, "media.image must be an image reference, e.g. rclone/rclone:1.69.1")
          .default(DEFAULT_RCLONE_IMAGE),
        {
          description: `The rclone image edms-ops copies the prefix with (default ${DEFAULT_RCLONE_IMAGE}); its /usr/local/bin/rclone also goes into the scheduler image.`,
        },
      ),
    },
    { error: "media must be an object with backend, bucket, endpoint and the keys" },
  )
  .strict()
  .refine((m) => !m.caCertificateFile || m.endpoint.startsWith("https://"), {
    path: ["caCertificateFile"],
    message:
      "media.caCertificateFile is for an https:// endpoint: make media.endpoint https://… (the server's TLS port) or leave the CA out",
  })
  // The secret key stays out of Settings (plain JSON in hooks' env and the scheduler's): mediaSecretKey().
  .transform(({ secretAccessKey: _key, ...rest }) => rest);

export type ConfiguredMedia = z.output<typeof mediaSchema>;
/** A bucket with its prefix resolved (the stack's name prefix unless configured). */
export type BucketMedia = Omit<ConfiguredMedia, "prefix"> & { readonly prefix: string };

/** The stack's bucket with its prefix resolved, or undefined when its media are in the volume. */
export function bucketMedia(settings: {
  readonly media?: ConfiguredMedia;
  readonly namePrefix: string;
}): BucketMedia | undefined {
  const media = settings.media;
  return media ? { ...media, prefix: media.prefix ?? settings.namePrefix } : undefined;
}

/** The secret key of an already validated `edms:media`, decrypted: only ever handed to Pulumi as a secret. */
export function mediaSecretKey(media: unknown): string | undefined {
  const key = (parseJsonish(media) as { secretAccessKey?: unknown } | undefined)?.secretAccessKey;
  return typeof key === "string" ? key : undefined;
}

/** The bucket's folder in messages: `bucket/prefix at endpoint`. */
export function mediaDescription(media: BucketMedia): string {
  return `bucket ${media.bucket}/${media.prefix} at ${media.endpoint.replace(/\/$/, "")}`;
}

/** Boto3's and rclone's credentials file (INI), `[default]` profile: what web, worker and edms-ops read. */
export function s3CredentialsFile(accessKeyId: string, secretKey: string): string {
  return `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretKey}\n`;
}
