/**
 * One-off Django containers (migrate, bootstrap, reset-app) on the stack's internal data network. Secrets reach them the
 * way the provider's `uploads` reach web/worker: as files copied in with `docker cp` from a tar stream,
 * never as env or argv, so `docker inspect` shows only *_FILE paths. The values come from the hook's
 * environment (EDMS_* set by Pulumi) or, for operator runs, straight from the running web container.
 */
import { randomBytes } from "crypto";
import { spawn } from "child_process";
import { Settings } from "../../model/settings";
import { djangoEnvironment, MEDIA_ROOT } from "../../model/containers";
import { CONFINEMENT } from "../../model/hardening";
import {
  DATABASE_CA_FILE,
  S3_CA_FILE,
  S3_CREDENTIALS_FILE,
  SECRETS_DIR,
  SUPERUSER_PASSWORD_FILE,
} from "../../model/containers";
import { bucketMedia } from "../../model/settings";
import { mediaNetwork } from "../backup/bucket";
import { readS3Credentials } from "../backup/bucketCredentials";
import { docker, RunResult } from "../engine/docker";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { failure, refuse } from "../core/errors";
import { progress } from "../core/log";
import { containersOf, liveWeb } from "../engine/services";
import { tarball, TarEntry } from "../engine/tarball";
import { basename } from "path";
import { readDatabaseCredentials } from "./credentials";
import { stackServer } from "./postgres";

const DATABASE_CA_NAME = basename(DATABASE_CA_FILE);

/** The network an external database is reached through. */
function stackServerNetwork(settings: Settings): string {
  const server = stackServer(settings);
  return server.kind === "external" ? server.network : settings.names.dataNetwork;
}

const SECRET_FILES: Record<string, string> = {
  postgres_password: "EDMS_POSTGRES_PASSWORD",
  django_secret_key: "EDMS_DJANGO_SECRET_KEY",
  redis_password: "EDMS_REDIS_PASSWORD",
  superuser_password: "EDMS_SUPERUSER_PASSWORD",
};

// A background job's stdin is /dev/null in sh, so the watcher reads the real one through fd 3.
const TIED_TO_STDIN =
  'exec 3<&0; "$@" </dev/null & pid=$!; { cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null; } & wait "$pid"';

export interface DjangoRun {
  readonly image: string;
  /** argv of the container, e.g. ["python3", "manage.py", "migrate", "--noinput"]. */
  readonly command: readonly string[];
  /** Also provide the superuser password file (bootstrap only). */
  readonly superuser?: boolean;
  /** Stream the command's output as progress lines. */
  readonly echo?: boolean;
}

export async function runDjango(settings: Settings, spec: DjangoRun): Promise<RunResult> {
  // The image and both stores' credentials, asked at once, before anything is created.
  const [, external, s3] = await Promise.all([
    requireImage(spec.image),
    settings.database ? readDatabaseCredentials(settings) : undefined,
    bucketMedia(settings) ? readS3Credentials(settings) : undefined,
  ]);
  const purpose = (spec.command[2] ?? "run")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, 20);
  const name = `${settings.namePrefix}-ops-${/^[a-z]/.test(purpose) ? purpose : "run"}-${randomBytes(3).toString("hex")}`;
  await docker(createArgs(settings, spec, name));
  try {
    // An external database is reached through a network of its own (a second one `docker create` of an
    // older engine cannot attach).
    if (settings.database) {
      await docker(["network", "connect", stackServerNetwork(settings), name]);
    }
    await copySecrets(settings, name, spec.superuser === true, external);
    if (s3 !== undefined) {
      await bucketAccess(settings, name, s3);
    }
    return await docker(["start", "-a", "-i", name], {
      allowFailure: true,
      holdStdin: true,
      onLine: spec.echo ? (line) => progress(`  ${line}`) : undefined,
    });
  } finally {
    await docker(["rm", "-f", name], { allowFailure: true });
  }
}

async function requireImage(image: string): Promise<void> {
  const found = await docker(["image", "inspect", image, "--format", "{{.Id}}"], {
    allowFailure: true,
  });
  if (found.code !== 0) {
    throw failure(
      `Image ${image} is not on the Docker host.`,
      "Build or pull it first (`edms:version` / `edms:backendImage`).",
    );
  }
}

/**
 * `docker create` of the one-off container. The command dies with this process: its stdin (held open by
 * `start -a -i`) reaches EOF when edms-ops is killed, and a migration in flight is then rolled back instead of
 * running on unwatched.
 */
function createArgs(settings: Settings, spec: DjangoRun, name: string): string[] {
  return dockerRunArgs(
    {
      image: spec.image,
      args: ["sh", "-c", TIED_TO_STDIN, "edms-ops", ...spec.command],
      stdin: true,
      name,
      network: settings.names.dataNetwork,
      labels: opsLabels(settings),
      env: [
        ...djangoEnvironment(settings, "owner"),
        ...(spec.superuser
          ? [`DJANGO_SUPERUSER_PASSWORD_FILE=${SECRETS_DIR}/superuser_password`]
          : []),
      ],
      // Bucket media: Django stores through S3, as web and worker do; the mirror is edms-ops' alone (a file
      // written there would be deleted by the next backup's copy, and a mount would create a missing one).
      mounts: bucketMedia(settings)
        ? []
        : [{ volume: settings.names.mediaVolume, path: MEDIA_ROOT }],
      // The web container's confinement: secrets are copied into its root before start, as into the web's.
      confinement: CONFINEMENT.web,
      limits: settings.limits.helpers,
    },
    "create",
  );
}

/** Bucket media: the endpoint's network, boto3's credentials file and the CA, as web and worker have them. */
async function bucketAccess(
  settings: Settings,
  container: string,
  s3: { readonly credentials: string; readonly ca?: string },
): Promise<void> {
  await docker(["network", "connect", mediaNetwork(settings, bucketMedia(settings)!), container]);
  const file = (path: string, content: string) => ({
    name: `secrets/${basename(path)}`,
    content,
    mode: 0o444,
  });
  const archive = await tarball([
    file(S3_CREDENTIALS_FILE, s3.credentials),
    ...(s3.ca ? [file(S3_CA_FILE, s3.ca)] : []),
  ]);
  await docker(["cp", "-", `${container}:/run`], { input: archive });
}

async function copySecrets(
  settings: Settings,
  container: string,
  superuser: boolean,
  external: { readonly password: string; readonly ca?: string } | undefined,
): Promise<void> {
  const wanted = Object.entries(SECRET_FILES).filter(
    ([file]) => superuser || file !== "superuser_password",
  );
  const fromEnv = wanted.every(([, variable]) => process.env[variable]);
  // An external server's CA (not a secret) and its admin's password: from edms-ops' credentials volume.
  const ca: TarEntry[] = external?.ca
    ? [{ name: `secrets/${DATABASE_CA_NAME}`, content: external.ca, mode: 0o444 }]
    : [];
  if (fromEnv) {
    const archive = await tarball([
      ...wanted.map(([file, variable]) => ({
        name: `secrets/${file}`,
        // An external admin's password as `backups init` last wrote it, not an operator's stale export.
        content: (file === "postgres_password" && external?.password) || process.env[variable]!,
        mode: 0o444,
      })),
      ...ca,
    ]);
    await docker(["cp", "-", `${container}:/run`], { input: archive });
    return;
  }
  if (superuser) {
    throw refuse(
      "bootstrap needs the superuser password: it runs as a `pulumi up` hook, which provides it.",
      "To run it by hand, export EDMS_POSTGRES_PASSWORD, EDMS_DJANGO_SECRET_KEY, EDMS_REDIS_PASSWORD and EDMS_SUPERUSER_PASSWORD first " +
        "(`pulumi stack output superuserPassword --show-secrets`).",
    );
  }
  // Operator run: stream the serving web container's secret files into the one-off container, and the
  // superuser's password from the postgres container (web and worker connect as the application role and
  // never hold it).
  const web = (await liveWeb(settings)) ?? (await containersOf(settings, "web")).pop();
  if (!web) {
    throw failure(
      `No web container of stack ${settings.stack} to take the database credentials from.`,
      `Deploy the stack first: \`pulumi up --stack ${settings.stack}\`.`,
    );
  }
  await streamCopy(`${web.name}:${SECRETS_DIR}`, `${container}:/run`);
  if (external) {
    const owner = { name: `secrets/${basename(SUPERUSER_PASSWORD_FILE)}`, mode: 0o444 };
    const archive = await tarball([{ ...owner, content: external.password }, ...ca]);
    await docker(["cp", "-", `${container}:/run`], { input: archive });
    return;
  }
  await streamCopy(
    `${settings.names.postgresContainer}:${SUPERUSER_PASSWORD_FILE}`,
    `${container}:${SECRETS_DIR}`,
  );
}

/** `docker cp from - | docker cp - to`: files between containers, never through a local file. */
function streamCopy(from: string, to: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const source = spawn("docker", ["cp", from, "-"]);
    const sink = spawn("docker", ["cp", "-", to]);
    source.stdout.pipe(sink.stdin);
    let failed = "";
    source.stderr.on("data", (d: Buffer) => (failed += d.toString()));
    sink.stderr.on("data", (d: Buffer) => (failed += d.toString()));
    sink.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(
            failure(
              `could not copy credentials: ${failed.trim()}`,
              `Check that ${from.split(":")[0]} is running (\`docker ps\`), then retry.`,
            ),
          ),
    );
  });
}

/** Runs `manage.py <args>` and throws with the output's tail when it fails. */
export async function manage(
  settings: Settings,
  image: string,
  args: readonly string[],
  what: string,
): Promise<string> {
  const result = await runDjango(settings, {
    image,
    command: ["python3", "manage.py", ...args],
    echo: true,
  });
  if (result.code !== 0) {
    const tail = (result.stderr || result.stdout).trim().split("\n").slice(-6).join("\n");
    throw failure(
      `${what} failed (exit ${result.code}). Nothing after it was done.\n${tail}`,
      "Fix the cause in the output above (a migration or fixture of the release), then run the command again.",
    );
  }
  return result.stdout;
}

/**
 * Several `migrate` runs as one transaction (PostgreSQL rolls DDL back): the database ends at the state
 * before or the state after, never between, whether a step fails or edms-ops is killed half way.
 * Each step is `migrate`'s arguments, e.g. ["documents", "zero"], or [] for every app.
 */
export async function migrateAtomically(
  settings: Settings,
  image: string,
  steps: readonly (readonly [string, string] | readonly [])[],
  what: string,
): Promise<void> {
  await manage(settings, image, ["shell", "-c", migrateCode(steps)], what);
}

/**
 * The Python `manage.py shell -c` runs for migrateAtomically. The app and the migration go to `migrate` as
 * its options' values, never through its argument parser, and a command that exits instead of returning
 * (argparse's help, an error) fails the run: `shell -c` would end with that exit's code, 0 for help, as if
 * every step had been applied.
 */
export function migrateCode(steps: readonly (readonly [string, string] | readonly [])[]): string {
  requireMigrateNames(
    steps.flatMap((step) => (step.length === 2 ? [{ app: step[0], to: step[1] }] : [])),
  );
  return [
    "import json",
    "from django.core.management import call_command",
    "from django.db import transaction",
    `steps = json.loads(${JSON.stringify(JSON.stringify(steps))})`,
    "try:",
    "    with transaction.atomic():",
    "        for args in steps:",
    '            print("migrate " + " ".join(args), flush=True)',
    "            named = dict(zip(('app_label', 'migration_name'), args))",
    "            call_command('migrate', interactive=False, verbosity=1, **named)",
    "except SystemExit as ended:",
    "    raise RuntimeError(f'migrate exited ({ended.code}) instead of applying its step') from None",
  ].join("\n");
}

/**
 * A Django app label or migration name (`documents`, `0001_initial`, `zero`): letters, digits and
 * underscores, as Django makes and accepts them.
 */
const MIGRATE_NAME = /^[\p{L}\p{N}_]+$/u;

/**
 * Refuses steps naming an app or a migration that is no Django name, before any of them runs. They come
 * from django_migrations, which the application's own role may write: a compromised release could plant a
 * row whose app is `-h` or `--fake`, for the rollback that follows it to run.
 */
export function requireMigrateNames(steps: readonly Step[]): void {
  const odd = steps.find((s) => !MIGRATE_NAME.test(s.app) || !MIGRATE_NAME.test(s.to));
  if (odd) {
    const name = MIGRATE_NAME.test(odd.app) ? odd.to : odd.app;
    throw refuse(
      `django_migrations names ${JSON.stringify(name)} (app ${JSON.stringify(odd.app)}), which is no Django app label or migration name (letters, digits and underscores only): no migration was run.`,
      `Find out how that row got there (a release's own migrations never have such a name: the application's database role can write the table), remove it (\`DELETE FROM django_migrations WHERE app = …\`), then run the command again.`,
    );
  }
}

/** One app's reversal: `manage.py migrate <app> <to>` (`zero` for an app the older release lacks). */
export interface Step {
  readonly app: string;
  readonly to: string;
}

/** The apps whose migration state differs from `recorded` (the state of the release rolled back to). */
export function reversalSteps(
  current: Record<string, string>,
  recorded: Record<string, string>,
): Step[] {
  return Object.keys(current)
    .filter((app) => current[app] !== recorded[app])
    .map((app) => ({ app, to: recorded[app] ?? "zero" }));
}

/**
 * reversalSteps, refused before anything is done when a name in them is no Django name: an app from the
 * live django_migrations, or a migration from the deployment record of the release gone back to (a copy of
 * that table as it was then).
 */
export function plannedReversal(
  current: Record<string, string>,
  recorded: Record<string, string>,
  release: string,
): Step[] {
  const steps = reversalSteps(current, recorded);
  // An odd app comes from the live table: refused as requireMigrateNames refuses it.
  requireMigrateNames(steps.filter((s) => !MIGRATE_NAME.test(s.app)));
  const to = steps.find((s) => !MIGRATE_NAME.test(s.to));
  if (to) {
    throw refuse(
      `The deployment record of ${release} names the migration ${JSON.stringify(to.to)} for the app ${JSON.stringify(to.app)}, which is no Django migration name (letters, digits and underscores only): no migration was run.`,
      "Go back by the pre-deploy backup instead, which runs no migration: `edms-ops rollback --previous --restore`.",
    );
  }
  return steps;
}
