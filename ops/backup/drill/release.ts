/** The backup's own release and database checks against the restored data, on the scratch network. */
import { randomBytes } from "crypto";
import {
  djangoEnvironment,
  MEDIA_ROOT,
  REDIS_PASSWORD_FILE,
  SECRETS_DIR,
} from "../../../model/containers";
import { Settings } from "../../../model/settings";
import { failure } from "../../core/errors";
import { lastLine } from "../../core/log";
import { inventory, migrationState } from "../../database/postgres";
import { docker, RunResult } from "../../engine/docker";
import { dockerRunArgs } from "../../engine/dockerRun";
import { CONFINEMENT } from "../../../model/hardening";
import { deployedReference, releaseReference } from "../../../model/images";
import type { Deployment } from "../../store/records";
import { tarball } from "../../engine/tarball";
import { Manifest } from "../../store/manifest";
import { compareMaps, inventoryProblems } from "../verify";
import { Checks, DAMAGED } from "./checks";
import { Scratch } from "./scratch";
import { containerServer } from "../../database/server";

/** Rows, schema objects, owners, database state and migration state of the scratch database against the manifest. */
export async function databaseChecks(
  settings: Settings,
  manifest: Manifest,
  db: string,
  checks: Checks,
): Promise<void> {
  await checks.run("row counts", async () => {
    const problems = inventoryProblems(manifest, await inventory(settings, containerServer(db)));
    if (problems.length) {
      throw failure(problems.join("; "), DAMAGED);
    }
    const rows = Object.values(manifest.tables).reduce((a, b) => a + b, 0);
    const extra = [
      ...(manifest.objects ? ["the schema objects"] : []),
      ...(manifest.databaseState ? ["owners and the database's settings and privileges"] : []),
    ];
    return `${Object.keys(manifest.tables).length} tables, ${rows} rows${extra.length ? ` and ${extra.join(", ")}` : ""} as recorded`;
  });
  await checks.run("migration state", async () => {
    const problems = compareMaps(
      "app",
      manifest.migrations,
      await migrationState(settings, containerServer(db)),
    );
    if (problems.length) {
      throw failure(problems.join("; "), DAMAGED);
    }
    return `${Object.keys(manifest.migrations).length} apps at their recorded migration`;
  });
}

/** The backup's own release against the restored data, in one container on the scratch network. */
export async function releaseChecks(
  settings: Settings,
  manifest: Manifest,
  scratch: Scratch,
  db: string,
  checks: Checks,
  {
    check,
    rehearse,
    history,
  }: { check?: string; rehearse: boolean; history: readonly Deployment[] },
): Promise<void> {
  // A backup taken while no web ran records no release: the configured one is the best guess left.
  const release = manifest.version ?? settings.version;
  const image = deployedReference(settings, release, history);
  const names = ["manage.py check", "migrate --check", ...(check ? ["--check"] : [])];
  const started = await checks.run(`release ${release} container`, () =>
    startReleaseContainer(settings, scratch, db, image, release),
  );
  if (!started) {
    names.forEach((n) => checks.skip(n, `no container of ${image}`));
    return;
  }
  const exec = async (args: string[]): Promise<string> => {
    const result = await docker(["exec", scratch.app, ...args], { allowFailure: true });
    const tail = (result.stdout + result.stderr).trim().split("\n").slice(-3).join(" | ");
    if (result.code !== 0) {
      throw failure(
        `exit ${result.code} from \`${args.join(" ")}\`: ${tail}`,
        "Fix the release or the backup (the release's output is in the drill record), then drill again.",
      );
    }
    return tail || "exit 0";
  };
  // Both only read: run at once (each is a Django start, about a second of CPU), recorded in this order.
  await checks.together([
    (own) =>
      own.run("manage.py check", () =>
        exec(["python3", "manage.py", "check", "--database", "default"]),
      ),
    (own) =>
      own.run("migrate --check", () =>
        exec(["python3", "manage.py", "migrate", "--check", "--noinput"]).then(
          () => `no unapplied migration for release ${release}`,
        ),
      ),
  ]);
  if (check) {
    await checks.run("--check", () => exec(["sh", "-c", check]));
  }
  const target = rehearse ? rehearsalTarget(settings, manifest, history) : null;
  if (target) {
    await rehearseMigration(settings, target, scratch, db, checks);
  }
}

/**
 * The release a pre-deploy drill rehearses: the one the backup was taken for (`--target-version`), when it is
 * another release than the backup's own, or the same version by other content (the digest the deploy pins is
 * not the one it ran by, `history`); null when there is nothing to rehearse (a redeploy of what wrote the
 * data migrates nothing new).
 */
export function rehearsalTarget(
  settings: Settings,
  manifest: Manifest,
  history: readonly Deployment[],
): string | null {
  const release = manifest.version ?? settings.version;
  const target = manifest.targetVersion;
  if (target && target === release) {
    // Only the configured version has other content to deploy than it ran by (its configured digest).
    if (target !== settings.version) {
      return null;
    }
    const other =
      releaseReference(settings, target) !== deployedReference(settings, release, history);
    return other ? target : null;
  }
  return target ?? null;
}

/** The name of the rehearsal's check; drill records keep it apart from the backup's own checks. */
export const REHEARSAL = "migration rehearsal";

/**
 * The pre-deploy drill's rehearsal: the release being deployed runs the `migrate` its hook runs next, on
 * the restored copy of production's data. A migration that fails on real data stops the deploy here,
 * before production's schema is touched; the time it took is the expected `migrate` time, recorded with
 * the drill. The backup's own release container goes first: the scratch database is the rehearsal's now.
 */
export async function rehearseMigration(
  settings: Settings,
  target: string,
  scratch: Scratch,
  db: string,
  checks: Checks,
): Promise<void> {
  const name = `${REHEARSAL} (${target})`;
  await docker(["rm", "-f", "-v", scratch.app], { allowFailure: true });
  const image = releaseReference(settings, target);
  await checks.run(name, async () => {
    await startReleaseContainer(settings, scratch, db, image, target);
    const started = Date.now();
    const result = await docker(
      ["exec", scratch.app, "python3", "manage.py", "migrate", "--noinput"],
      { allowFailure: true },
    );
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result.code !== 0) {
      throw failure(
        `release ${target}'s \`migrate\` fails on this data (exit ${result.code} after ${seconds}s): ${lastLine(result.stderr || result.stdout)}`,
        `Fix the migration of ${target} (it fails on the data production holds), then deploy again; production's schema was not touched.`,
      );
    }
    const applied = (result.stdout.match(/^ {2}Applying /gm) ?? []).length;
    return `${applied} migration(s) of ${target} applied in ${seconds}s: the expected \`migrate\` time`;
  });
}

/**
 * The release's container on the scratch network, confined as the web is (its secrets are copied in before
 * it starts), with the helpers' limits: `docker create` argv.
 */
export function releaseContainerArgs(
  settings: Settings,
  scratch: Scratch,
  db: string,
  image: string,
  release: string,
): string[] {
  // The scratch server is a container of the stack's kind whatever the live one is: reached by name, as
  // its superuser, without TLS (an external database's host, port and TLS settings are not its).
  const env = djangoEnvironment(
    // The scratch server and the scratch media: never the external database or the live bucket.
    { ...settings, version: release, database: undefined, media: undefined },
    "owner",
  )
    .map((e) => (e.startsWith("POSTGRES_HOST=") ? `POSTGRES_HOST=${db}` : e))
    // Nothing on the scratch network answers there: a check that needs Redis fails instead of
    // reaching the live one.
    .map((e) => (e.startsWith("REDIS_URL=") ? "REDIS_URL=redis://127.0.0.1:1/0" : e));
  return dockerRunArgs(
    {
      image,
      args: ["infinity"],
      name: scratch.app,
      network: scratch.network,
      labels: scratch.labelMap(),
      env: ["EDMS_DRILL=1", ...env],
      mounts: [{ volume: scratch.volume, path: MEDIA_ROOT }],
      entrypoint: "sleep",
      logging: false,
      confinement: CONFINEMENT.web,
      limits: settings.limits.helpers,
    },
    "create",
  );
}

async function startReleaseContainer(
  settings: Settings,
  scratch: Scratch,
  db: string,
  image: string,
  release: string,
): Promise<string> {
  const found = await docker(["image", "inspect", image, "--format", "{{.Id}}"], {
    allowFailure: true,
  });
  if (found.code !== 0) {
    throw failure(
      `image ${image} is not on the Docker host`,
      "Load or pull it there, then drill again.",
    );
  }
  await docker(releaseContainerArgs(settings, scratch, db, image, release));
  // Throwaway values, not the stack's: the scratch server trusts every connection, and the key signs
  // nothing that outlives the drill.
  const archive = await tarball([
    { name: `${SECRETS_DIR.slice(1)}/postgres_password`, content: "drill", mode: 0o444 },
    {
      name: `${SECRETS_DIR.slice(1)}/django_secret_key`,
      content: randomBytes(32).toString("hex"),
      mode: 0o444,
    },
    // The release's settings read it; nothing on the scratch network would check it.
    { name: REDIS_PASSWORD_FILE.slice(1), content: "drill", mode: 0o444 },
  ]);
  await docker(["cp", "-", `${scratch.app}:/`], { input: archive });
  const startedApp: RunResult = await docker(["start", scratch.app], { allowFailure: true });
  if (startedApp.code !== 0) {
    throw failure(
      `could not start ${image}: ${lastLine(startedApp.stderr)}`,
      "Check that the image runs (`docker run --rm <image> true`), then drill again.",
    );
  }
  return `${image} on the scratch network`;
}
