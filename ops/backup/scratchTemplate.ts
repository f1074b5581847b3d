/**
 * A scratch server (verify's test-restore, the drill's) starts from a copy of an empty, cleanly stopped cluster
 * instead of running initdb: its initdb, its entrypoint's temporary server and the stop of that server took
 * 3.1-3.5 s of an idle host's 2 cores, the copy and the start 1.1-1.2 s. The cluster is made once per host
 * and postgres image (`edms-scratch-template-<image id>`, no stack owns it: it holds no data, only what the
 * image's own entrypoint writes into an empty data directory with the scratch server's environment) by that
 * image's own entrypoint, so whatever the image, the copy is what its first start would have made.
 *
 * Published only when whole: the builder writes a new folder, stops its server (fast shutdown, a clean
 * checkpoint), then renames a file naming that folder into place. A scratch server copies the folder that
 * file names and falls back to its image's own initdb when there is none, or the copy fails: never slower
 * than before, never a half-made cluster.
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

/** The scratch server's environment: the template is made with the very same. */
export const SCRATCH_ENV = [
  `POSTGRES_USER=${POSTGRES_USER}`,
  `POSTGRES_DB=${POSTGRES_DB}`,
  "POSTGRES_HOST_AUTH_METHOD=trust",
];

export interface ScratchTemplate {
  readonly volume: string;
  /** The image's entrypoint and command, which the scratch server's wrapper runs after the copy. */
  readonly command: readonly string[];
}

/**
 * The scratch server's entrypoint ($1: the template's mount; then the image's entrypoint and command): the published cluster copied into
 * its empty data directory, or nothing (its image's entrypoint then runs initdb, as without a template).
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
 * The builder's script ($1: the template's mount, $2 its folder's suffix; then the image's entrypoint and command): the image's own
 * entrypoint makes and starts the cluster in a new folder; once it answers it is stopped (SIGINT: fast
 * shutdown), and only after a clean stop is the folder published. Folders of earlier or abandoned builds go
 * after ten minutes (a scratch server may still be copying one).
 */
export const BUILD_SCRIPT = [
  "set -eu",
  't=$1; dir="build-$2"; shift 2',
  'mkdir -p "$t/$dir"',
  'PGDATA="$t/$dir/data" "$@" &',
  "pid=$!",
  "i=0",
  `until pg_isready -q -h 127.0.0.1 -U ${POSTGRES_USER} -d ${POSTGRES_DB}; do`,
  '  i=$((i + 1)); [ "$i" -lt 600 ] && kill -0 "$pid" 2>/dev/null || exit 1; sleep 0.1',
  "done",
  'kill -INT "$pid"',
  'wait "$pid"',
  `printf '%s\\n' "$dir" > "$t/current.new"`,
  'mv -f "$t/current.new" "$t/current"',
  `find "$t" -mindepth 1 -maxdepth 1 -name 'build-*' ! -name "$dir" -mmin +10 -exec rm -rf {} +`,
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
  const digest = /^sha256:([0-9a-f]{12})/.exec(id)?.[1];
  if (!digest || command.length === 0) {
    return undefined;
  }
  const template = { volume: `edms-scratch-template-${digest}`, command };
  if (!(await volumeExists(template.volume))) {
    await Promise.all([
      buildTemplate(settings, image, template, id),
      removeTemplatesOfGoneImages(),
    ]);
  }
  return template;
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
  for (const [volume, image] of listed.stdout.split("\n").map((l) => l.split(" "))) {
    if (!volume || !image || !/^sha256:[0-9a-f]{64}$/.test(image)) {
      continue;
    }
    const present = await docker(["image", "inspect", "--format", "{{.Id}}", image], {
      allowFailure: true,
    });
    if (present.code !== 0) {
      await docker(["volume", "rm", volume], { allowFailure: true });
    }
  }
}

/**
 * Runs the builder to its end. Not labelled with the stack: no session's cleanup ends it, so a killed edms-ops
 * leaves it to finish and publish. Its failure is no failure of the caller: the scratch server then runs
 * initdb itself.
 */
async function buildTemplate(
  settings: Settings,
  image: string,
  template: ScratchTemplate,
  imageId: string,
): Promise<void> {
  await docker(
    dockerRunArgs({
      image,
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
      mounts: [
        {
          volume: template.volume,
          path: TEMPLATE_DIR,
          labels: { [LABELS.role]: TEMPLATE_ROLE, [TEMPLATE_IMAGE_LABEL]: imageId },
        },
      ],
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
}
