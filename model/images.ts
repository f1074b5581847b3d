/**
 * Every image a stack pulls, and whether each is pinned by digest (`…@sha256:<64 hex>`): a tag is a name
 * the registry may move to other content, a digest is the content. Production pins them all (the policy
 * `production-images-by-digest`); elsewhere the program warns. The release is pinned by
 * `edms:releaseDigest`: its reference is `<backendImage>:<version>@<digest>`, which Docker pulls and runs
 * by the digest alone (the tag stays readable).
 */
import { Settings } from "./config/types";
import { scheduleEnabled } from "./schedule";

const DIGEST_SUFFIX = /@sha256:[0-9a-f]{64}$/;
/** What `docker inspect` calls an image's Id, and RemoteImage.imageId holds: the content itself. */
const CONTENT_ID = /^sha256:[0-9a-f]{64}$/;

/** True when `reference` names its content by digest (`name[:tag]@sha256:<64 hex>`). */
export function pinnedByDigest(reference: string): boolean {
  return DIGEST_SUFFIX.test(reference.trim());
}

/** True for a local image id (`sha256:<64 hex>`), which is content, not a name. */
export function isContentId(image: string): boolean {
  return CONTENT_ID.test(image.trim());
}

/** The `sha256:…` digest a pinned reference carries, or undefined. */
export function digestOf(reference: string): string | undefined {
  return pinnedByDigest(reference) ? reference.slice(reference.lastIndexOf("@") + 1) : undefined;
}

type ReleaseSettings = Pick<Settings, "backendImage" | "version" | "releaseDigest">;

/**
 * The image of `version` (default the configured one): `<backendImage>:<version>@<releaseDigest>` for the
 * configured version when the stack pins it, else `<backendImage>:<version>`. The configured digest is
 * never attached to another version (a drill of an older release, rollback's reversal): that would run the
 * configured release's content under another release's name.
 */
export function releaseReference(settings: ReleaseSettings, version = settings.version): string {
  const tagged = `${settings.backendImage}:${version}`;
  return version === settings.version && settings.releaseDigest
    ? `${tagged}@${settings.releaseDigest}`
    : tagged;
}

/**
 * The digest a deployment record's `reference` pins `version` of `backendImage` by, to configure it again
 * (rollback); undefined when the record pins nothing, or pins another image than the one configured now.
 */
export function recordedDigest(
  backendImage: string,
  version: string,
  reference: string | undefined,
): string | undefined {
  const digest = reference ? digestOf(reference) : undefined;
  return digest && reference === `${backendImage}:${version}@${digest}` ? digest : undefined;
}

/**
 * The reference `version` ran by here: that of its newest deployment of this backendImage that `history`
 * records, pinned by digest or not (Docker pulls `name:tag@digest` by the digest alone and leaves no tag on
 * the host, so the bare tag would not be found there; a version redeployed with another digest, or by its tag
 * once unpinned, ran by that one); with none on record, what releaseReference gives (the configured digest
 * for the configured version, else the tag).
 */
export function deployedReference(
  settings: ReleaseSettings,
  version: string,
  history: readonly { readonly version: string; readonly reference?: string }[],
): string {
  const tagged = `${settings.backendImage}:${version}`;
  for (let i = history.length - 1; i >= 0; i -= 1) {
    const { reference } = history[i];
    if (history[i].version !== version || reference === undefined) {
      continue; // another version's, or a record from before references were kept
    }
    const digest = recordedDigest(settings.backendImage, version, reference);
    if (digest) {
      return `${tagged}@${digest}`;
    }
    if (reference === tagged) {
      return tagged;
    }
  }
  return releaseReference(settings, version);
}

/** The config keys that choose each image, as operators set them. */
export const IMAGE_KEYS = {
  release: "edms:releaseDigest",
  postgres: "edms:postgresImage",
  redis: "edms:redisImage",
  proxy: "edms:proxy.image",
  backup: "edms:backup.image",
  schedulerBase: "edms:backup.schedulerImage",
} as const;

export interface StackImage {
  /** The config key that pins it (for the release: `edms:releaseDigest`). */
  readonly key: string;
  readonly reference: string;
}

/** Every image the stack pulls: its services', edms-ops' helpers' and the scheduler build's bases. */
export function stackImages(settings: Settings): StackImage[] {
  const { backup } = settings;
  return [
    { key: IMAGE_KEYS.release, reference: releaseReference(settings) },
    { key: IMAGE_KEYS.postgres, reference: settings.postgresImage },
    { key: IMAGE_KEYS.redis, reference: settings.redisImage },
    ...(settings.proxy.enabled ? [{ key: IMAGE_KEYS.proxy, reference: settings.proxy.image }] : []),
    { key: IMAGE_KEYS.backup, reference: backup.image },
    ...(scheduleEnabled(backup.schedule)
      ? [{ key: IMAGE_KEYS.schedulerBase, reference: backup.schedulerImage }]
      : []),
  ];
}

/** How to find a digest, for messages that ask for one. */
export const FIND_DIGEST =
  "find a digest with `docker buildx imagetools inspect <image>` (the registry's, before a pull) or `docker inspect --format '{{index .RepoDigests 0}}' <image>` (one already pulled)";

/** How to pin the image chosen by `key`, for messages. */
export function pinAdvice(key: string): string {
  return key === IMAGE_KEYS.release
    ? `set \`${key}\` to the release image's digest (\`sha256:…\`)`
    : `set \`${key}\` to \`<image>@sha256:…\``;
}

/** The one warning of a stack with unpinned images; undefined when all are pinned. */
export function unpinnedWarning(settings: Settings): string | undefined {
  const unpinned = stackImages(settings).filter((i) => !pinnedByDigest(i.reference));
  if (!unpinned.length) {
    return undefined;
  }
  const list = unpinned.map((i) => `${i.reference} (\`${i.key}\`)`).join(", ");
  return (
    `Stack ${settings.stack} pulls ${unpinned.length} image(s) by tag, which the registry may move to other content: ${list}. ` +
    `Production refuses that (policy production-images-by-digest). To pin one, set its key to \`<image>@sha256:…\` (the release: \`${IMAGE_KEYS.release}\` to \`sha256:…\`); ${FIND_DIGEST}.`
  );
}
