/**
 * A scratch server (verify's test-restore, the drill's) starts from a copy of an empty, cleanly stopped cluster
 * instead of running initdb: its initdb, its entrypoint's temporary server and the stop of that server took
 * 3.1-3.5 s of an idle host's 2 cores, the copy and the start 1.1-1.2 s. The cluster is made once per host
 * and postgres image (`edms-scratch-template-<image id>`, no stack owns it: it holds no data, only what the
 * image's own entrypoint writes into an empty data directory with the scratch server's environment) by that
 * image's own entrypoint, so whatever the image, the copy is what its first start would have made.
 *
 * Published only when whole: the builder writes a folder, stops its server (fast shutdown, a clean
 * checkpoint), then renames a file naming that folder into place; edms-ops then creates an empty volume
 * beside the template that says it is ready. Without that mark (a builder killed, or one that failed) the
 * template is removed and made again. A scratch server copies only a folder a builder named and otherwise
 * runs its image's own initdb, as before: never a half-made cluster. The first scratch server of an image on
 * a host waits for the build (3.6 s here) and its copy.
 */
import { randomBytes } from "crypto";
import { z } from "zod";
import { LABELS } from "../../model/labels";
import { POSTGRES_DB, POSTGRES_USER } from "../../model/containers";
import { CONFINEMENT } from "../../model/hardening";
import { Settings } from "../../model/settings";
import { docker, volumeExists } from "../engine/docker";
import { dockerRunArgs } from "../engine/dockerRun";
import { tryParseJson } from "../core/json";

/** Where a scratch server and the builder mount the template volume. */
export const TEMPLATE_DIR = "/template";

export const TEMPLATE_ROLE = "scratch-template";
/** On a template volume: the id of the image that made it. */
const TEMPLATE_IMAGE_LABEL = "edms.image";
const TEMPLATE_PREFIX = "edms-scratch-template-";
/** The empty volume whose existence says the template beside it is published. */
const READY_SUFFIX = "-ready";

/** Whether a scratch server (or the builder's) answers: on its loopback, as its superuser. */
export const SCRATCH_READY = `pg_isready -q -h 127.0.0.1 -U ${POSTGRES_USER} -d ${POSTGRES_DB}`;

/** The scratch server's environment: the template is made with the very same. */
export const SCRATCH_ENV = [
  `POSTGRES_USER=${POSTGRES_USER}`,
  `POSTGRES_DB=${POSTGRES_DB}`,
  "POSTGRES_HOST_AUTH_METHOD=trust",
];

export interface ScratchTemplate {
  readonly volume: string;
  /** The image's id: the builder and the scratch server run by it, so a tag moved meanwhile changes nothing. */
  readonly image: string;
  /** The image's entrypoint and command, which the scratch server's wrapper runs after the copy. */
  readonly command: readonly string[];
}

/**
 * The scratch server's entrypoint ($1: the template's mount; then the image's entrypoint and command): the
 * published cluster copied into its empty data directory, or nothing (its image's entrypoint then runs initdb,
 * as without a template).
 */
export const SCRATCH_WRAPPER = [
  "t=$1; shift",
  'd=$(cat "$t/current" 2>/dev/null) || d=',
  // Only a folder a builder named: never a path out of the template.
  'case "$d" in build-[0-9a-f]*) case "$d" in */*) d= ;; esac ;; *) d= ;; esac',
  'if [ -n "$d" ] && [ -n "${PGDATA:-}" ] && [ -s "$t/$d/data/PG_VERSION" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then',
  '  mkdir -p "$PGDATA" && cp -a "$t/$d/data/." "$PGDATA/" || rm -rf "${PGDATA:?}"/*',
  "fi",
  'exec "$@"',
].join("\n");

/**
 * The builder's script ($1: the template's mount, $2 its folder's suffix; then the image's entrypoint and
 * command): the image's own entrypoint makes and starts the cluster in a new folder; once it answers it is
 * stopped (SIGINT: fast shutdown), and only after a clean stop is the folder published.
 */
export const BUILD_SCRIPT = [
  "set -eu",
  't=$1; dir="build-$2"; shift 2',
  'mkdir -p "$t/$dir"',
  'PGDATA="$t/$dir/data" "$@" &',
  "pid=$!",
  "i=0",
  `until ${SCRATCH_READY}; do`,
  '  i=$((i + 1)); [ "$i" -lt 600 ] && kill -0 "$pid" 2>/dev/null || exit 1; sleep 0.1',
  "done",
  'kill -INT "$pid"',
  // A fast shutdown takes a second; one that does not end within a minute publishes nothing.
  'i=0; while kill -0 "$pid" 2>/dev/null; do i=$((i + 1)); [ "$i" -lt 600 ] || { kill -KILL "$pid"; exit 1; }; sleep 0.1; done',
  'wait "$pid"',
  `printf '%s\\n' "$dir" > "$t/current.$dir"`,
  'mv -f "$t/current.$dir" "$t/current"',
].join("\n");

const ImageSchema = z.tuple([
  z.string(),
  z.array(z.string()).nullable(),
  z.array(z.string()).nullable(),
]);

/** The template for `image`, made first when this host has none; undefined: start with initdb as before. */
export async function scratchTemplate(
  settings: Settings,
  image: string,
): Promise<ScratchTemplate | undefined> {
  const inspected = await docker(
    [
      "image",
      "inspect",
      "--format",
      "[{{json .Id}},{{json .Config.Entrypoint}},{{json .Config.Cmd}}]",
      image,
    ],
    { allowFailure: true },
  );
  // Not on this host yet (the scratch server's `docker run` pulls it): no template this time.
  const parsed = inspected.code === 0 ? tryParseJson(inspected.stdout, ImageSchema) : undefined;
  if (!parsed?.ok) {
    return undefined;
  }
  const [id, entrypoint, cmd] = parsed.value;
  const command = [...(entrypoint ?? []), ...(cmd ?? [])];
  const digest = /^sha256:([0-9a-f]{12})[0-9a-f]{52}$/.exec(id)?.[1];
  if (!digest || command.length === 0) {
    return undefined;
  }
  const volume = `${TEMPLATE_PREFIX}${digest}`;
  const template = { volume, image: id, command };
  // The empty volume beside it says the template was published (a builder killed with edms-ops, or by a
  // daemon restart, leaves none): Docker shows it where the template's own files would take a container.
  const mark = `${volume}${READY_SUFFIX}`;
  const [ready, present] = await Promise.all([volumeExists(mark), volumeExists(volume)]);
  if (ready && present) {
    return template;
  }
  // A mark without its template (removed by hand, or by a second builder's start as the first one marked it).
  if (ready) {
    await docker(["volume", "rm", mark], { allowFailure: true });
  }
  const [built] = await Promise.all([
    buildTemplate(settings, template),
    removeTemplatesOfGoneImages(),
  ]);
  return built ? template : undefined;
}

/**
 * Makes the template afresh and marks it ready; false when it could not (the caller runs initdb). One builder
 * per image at a time: its container's name is the template's, and a template volume another builder or a
 * scratch server is using cannot be removed, so neither is touched then.
 */
async function buildTemplate(settings: Settings, template: ScratchTemplate): Promise<boolean> {
  const removed = await docker(["volume", "rm", template.volume], { allowFailure: true });
  if (removed.code !== 0 && !/no such volume/i.test(removed.stderr)) {
    return false;
  }
  const labels = { [LABELS.role]: TEMPLATE_ROLE, [TEMPLATE_IMAGE_LABEL]: template.image };
  const build = await docker(
    dockerRunArgs({
      image: template.image,
      name: `${template.volume}-build`,
      remove: true,
      network: "none",
      user: "0",
      entrypoint: "sh",
      args: [
        "-c",
        BUILD_SCRIPT,
        "edms-scratch-template",
        TEMPLATE_DIR,
        randomBytes(4).toString("hex"),
        ...template.command,
      ],
      labels: { [LABELS.role]: TEMPLATE_ROLE },
      env: SCRATCH_ENV,
      mounts: [{ volume: template.volume, path: TEMPLATE_DIR, labels }],
      // KILL: its shell (root) signals the server, which runs as the image's postgres user.
      confinement: {
        ...CONFINEMENT.postgres,
        capabilities: [...CONFINEMENT.postgres.capabilities, "KILL"],
        readOnly: true,
      },
      limits: settings.limits.helpers,
    }),
    { allowFailure: true },
  );
  if (build.code !== 0) {
    // Unless another builder holds it: then it is that builder's to finish.
    if (!/already in use/i.test(build.stderr)) {
      await docker(["volume", "rm", template.volume], { allowFailure: true });
    }
    return false;
  }
  const marked = await docker(
    [
      "volume",
      "create",
      ...Object.entries(labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
      `${template.volume}${READY_SUFFIX}`,
    ],
    { allowFailure: true },
  );
  return marked.code === 0;
}

/** Templates of images no longer on the host (a postgres upgrade); one in use stays (Docker refuses). */
async function removeTemplatesOfGoneImages(): Promise<void> {
  const listed = await docker(
    [
      "volume",
      "ls",
      "--filter",
      `label=${LABELS.role}=${TEMPLATE_ROLE}`,
      "--format",
      `{{.Name}} {{.Label "${TEMPLATE_IMAGE_LABEL}"}}`,
    ],
    { allowFailure: true },
  );
  // A template and its mark carry the same labels: each pair once, by the template's name.
  const images = new Map<string, string>();
  for (const [volume, image] of listed.stdout.split("\n").map((l) => l.split(" "))) {
    if (volume?.startsWith(TEMPLATE_PREFIX) && /^sha256:[0-9a-f]{64}$/.test(image ?? "")) {
      images.set(volume.replace(new RegExp(`${READY_SUFFIX}$`), ""), image);
    }
  }
  for (const [base, image] of images) {
    const present = await docker(["image", "inspect", "--format", "{{.Id}}", image], {
      allowFailure: true,
    });
    if (present.code !== 0) {
      // The mark first: a template without its mark is made again before it is used.
      await docker(["volume", "rm", `${base}${READY_SUFFIX}`], { allowFailure: true });
      await docker(["volume", "rm", base], { allowFailure: true });
    }
  }
}
