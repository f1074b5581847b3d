/**
 * What `production-images-by-digest` (policies.ts) finds: every image the stack's resources pull by a
 * name the registry may move. Read from the resources themselves, so it holds against a hand-edited
 * program: the release's RemoteImage, each container's image (a content id, `sha256:<64 hex>`, as the
 * program gives web and worker from RemoteImage.imageId, is content, not a name; a locally built image is
 * judged by the bases it is built from), the built image's base build args, and the helper image edms-ops
 * runs (`backup.image` of the settings every hook is handed).
 */
import { IMAGE_KEYS, FIND_DIGEST, isContentId, pinAdvice, pinnedByDigest } from "../model/images";
import { LABELS } from "../model/labels";

const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
const BUILT_IMAGE = "docker:index/image:Image";
const CONTAINER = "docker:index/container:Container";
const COMMAND = "command:local:Command";

/** The config key behind each service's image, by its edms.role label. */
const KEY_BY_ROLE: Record<string, string> = {
  postgres: IMAGE_KEYS.postgres,
  redis: IMAGE_KEYS.redis,
  proxy: IMAGE_KEYS.proxy,
  web: IMAGE_KEYS.release,
  worker: IMAGE_KEYS.release,
};

/** The scheduler image's build args (images/scheduler/Dockerfile) and the key each comes from. */
const KEY_BY_BUILD_ARG: Record<string, string> = {
  BASE: IMAGE_KEYS.schedulerBase,
  POSTGRES: IMAGE_KEYS.postgres,
  RESTIC: IMAGE_KEYS.backup,
};

interface Resource {
  readonly type: string;
  readonly name: string;
  readonly props: Record<string, any>;
}

const roleOf = (props: Record<string, any>): string | undefined =>
  ((props.labels ?? []) as { label: string; value: string }[]).find((l) => l.label === LABELS.role)
    ?.value;

/** The helper image edms-ops runs, from the settings a hook is handed (absent or unknown: none). */
function helperImage(props: Record<string, any>): string | undefined {
  const json = (props.environment as Record<string, unknown> | undefined)?.EDMS_SETTINGS_JSON;
  if (typeof json !== "string") {
    return undefined;
  }
  try {
    const image = (JSON.parse(json) as { backup?: { image?: unknown } }).backup?.image;
    return typeof image === "string" ? image : undefined;
  } catch {
    return undefined;
  }
}

/** Each image `resource` pulls by name, with the key that pins it; unknown values (a preview) are left out. */
function imagesOf(resource: Resource, built: ReadonlySet<string>): [string, string, string][] {
  const { type, props } = resource;
  const what = `${props.name ?? resource.name}`;
  switch (type) {
    case REMOTE_IMAGE:
      return [[props.name, IMAGE_KEYS.release, "the release image"]];
    case CONTAINER: {
      const image = props.image;
      const isName = typeof image === "string" && !isContentId(image) && !built.has(image);
      const key = KEY_BY_ROLE[roleOf(props) ?? ""] ?? "its image";
      return isName ? [[image, key, `container ${what}`]] : [];
    }
    case BUILT_IMAGE:
      return Object.entries((props.build?.args ?? {}) as Record<string, unknown>).map(
        ([arg, ref]) => [ref, KEY_BY_BUILD_ARG[arg] ?? `build arg ${arg}`, `${arg} of ${what}`],
      ) as [string, string, string][];
    case COMMAND: {
      const image = helperImage(props);
      return image ? [[image, IMAGE_KEYS.backup, "edms-ops' helper containers"]] : [];
    }
    default:
      return [];
  }
}

const advice = (key: string) =>
  key.startsWith("edms:") ? pinAdvice(key) : "name it `<image>@sha256:…`";

/** One message per image pulled by tag, naming the key to set and how to find the digest. */
export function unpinnedImageReports(resources: readonly Resource[]): string[] {
  const built = new Set(
    resources
      .filter((r) => r.type === BUILT_IMAGE && typeof r.props.imageName === "string")
      .map((r) => r.props.imageName as string),
  );
  const reports = new Set<string>();
  for (const resource of resources) {
    for (const [ref, key, what] of imagesOf(resource, built)) {
      if (typeof ref === "string" && !pinnedByDigest(ref)) {
        reports.add(
          `Production pulls ${ref} (${what}) by tag, which the registry can move to other content. Pin it by digest: ${advice(key)}; ${FIND_DIGEST}.`,
        );
      }
    }
  }
  return [...reports];
}
