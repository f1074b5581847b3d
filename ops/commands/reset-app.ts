/**
 * `reset-app <app>`: empty one Django app's tables. `migrate <app> zero` also unapplies every migration that
 * depends on the app's (Django follows the migration graph), so the apps it touches are computed first from the
 * same plan Django will run, listed, and must be named by the operator (`--with-dependents`); then all of them
 * are re-migrated. Writers stop before the undo backup, so nothing written in between is in neither state.
 */
import { REASONS } from "../../model/hooks";
import { Command } from "commander";
import { createBackup } from "../backup/create";
import { connect, requireConfirm, stackOf } from "../core/context";
import { migrationState, requirePostgres } from "../database/postgres";
import { manage, migrateAtomically } from "../database/django";
import { isContentId, releaseReference } from "../../model/images";
import { grantAppRights } from "../database/appRole";
import { stopWriters } from "../backup/undo";
import { allSettledOrThrow, failure, refuse } from "../core/errors";
import { progress, say } from "../core/log";
import { liveWeb, servingContainers, startEach } from "../engine/services";
import { OpsSession, withSession } from "../engine/session";
import { confirmFlag, refuseDuringRestore } from "../store/markers";
import { Settings } from "../../model/settings";
import { z } from "zod";
import { parseJson } from "../core/json";

/** The migrations `migrate <app> zero` would unapply, as Django itself plans them, grouped by app. */
export async function unapplyPlan(
  settings: Settings,
  image: string,
  app: string,
): Promise<Record<string, string[]>> {
  const code = [
    "import json",
    "from django.db import connection",
    "from django.db.migrations.executor import MigrationExecutor",
    `plan = MigrationExecutor(connection).migration_plan([(${JSON.stringify(app)}, None)])`,
    "apps = {}",
    "for migration, backwards in plan:",
    "    apps.setdefault(migration.app_label, []).append(migration.name)",
    'print("EDMS-PLAN " + json.dumps(apps))',
  ].join("\n");
  const output = await manage(
    settings,
    image,
    ["shell", "-c", code],
    `planning the reset of ${app}`,
  );
  const line = output.split("\n").find((l) => l.startsWith("EDMS-PLAN "));
  if (!line) {
    throw failure(
      `Could not compute which apps \`migrate ${app} zero\` touches (no plan printed). Nothing was changed.`,
      "Check that the running release's image has the app (`edms-ops status`), then retry.",
    );
  }
  return parseJson(
    line.slice("EDMS-PLAN ".length),
    z.record(z.string(), z.array(z.string())),
    `the plan of \`migrate ${app} zero\``,
  );
}

export function register(program: Command): void {
  program
    .command("reset-app <app>")
    .description(
      "Empty one Django app (and, named with --with-dependents, the apps whose migrations depend on it): stop web/worker, back up, `migrate <app> zero`, `migrate`, start",
    )
    .option("--confirm <stack>", "the stack name again (on production: --confirm production)")
    .option(
      "--with-dependents <apps>",
      "comma-separated: the other apps that lose their data too, exactly as reset-app lists them",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  edms-ops reset-app systemsettings --stack staging --confirm staging\n  edms-ops reset-app auth --with-dependents admin,documents --stack staging --confirm staging",
    )
    .action(resetApp);
}

async function resetApp(
  app: string,
  opts: { confirm?: string; withDependents?: string },
  command: Command,
): Promise<void> {
  const settings = stackOf(command);
  if (!/^[a-z_][a-z0-9_]*$/.test(app)) {
    throw refuse(
      `\`${app}\` is not a Django app label (lowercase letters, digits, underscores). Nothing was changed.`,
      "Pass the app's label, e.g. `edms-ops reset-app documents`.",
    );
  }
  requireConfirm(settings, opts.confirm, `reset-app ${app}`);
  await connect(settings);
  await requirePostgres(settings);
  // Planned under the stack's lock: a deploy or rollback waited for could change the release and the
  // migration state the plan (and the dependents the operator must name) is made of.
  const { emptied, apps, backup } = await withSession(settings, `reset-app ${app}`, (session) =>
    planAndReset(session, app, opts),
  );
  reportReset(settings, emptied, apps, backup?.id);
}

/** The plan from the running release, then writers stopped, the undo backup and the reset in one transaction. */
async function planAndReset(session: OpsSession, app: string, opts: { withDependents?: string }) {
  const { settings } = session;
  // Before anything stops: web/worker stay down on half-restored data until the restore is finished.
  await refuseDuringRestore(session, `resetting ${app}`);
  const apps = await migrationState(settings);
  // Own keys only: `constructor` or `__proto__` is no app, whatever a plain object inherits.
  if (!Object.hasOwn(apps, app)) {
    throw refuse(
      `Unknown app \`${app}\`: stack ${settings.stack} has migrations for ${Object.keys(apps).join(", ") || "no apps"}. Nothing was changed.`,
      "Pass one of those app labels.",
    );
  }
  // The running web's own image, by its content: a release pulled by digest has no tag on the host. The
  // configured release when no web runs.
  const web = await liveWeb(settings);
  const image = web && isContentId(web.image) ? web.image : releaseReference(settings);
  const emptied = [
    app,
    ...requireDependentsNamed(app, await unapplyPlan(settings, image, app), opts),
  ];
  say(
    `Will reset ${emptied.join(", ")} on ${settings.stack}: stop web/worker, back up, migrate ${app} zero (drops the tables of ${emptied.join(", ")}), migrate, start web/worker.`,
  );
  const backup = await resetStopped(settings, image, app, emptied);
  return { emptied, apps: Object.keys(apps), backup };
}

/** Writers stopped, the undo backup, then `migrate <app> zero` + `migrate` in one transaction. */
async function resetStopped(settings: Settings, image: string, app: string, emptied: string[]) {
  // The backup reads the repository and the records while they stop; its dump waits for them.
  const stopping = stopWriters(settings);
  try {
    const [, backup] = await allSettledOrThrow([
      stopping,
      createBackup(settings, { reason: REASONS.preResetApp }, stopping),
    ]);
    const taken = backup?.entry;
    // One transaction: a failure or a kill leaves every app as it was, never half reset.
    progress(`migrate ${app} zero, then migrate (one transaction)`);
    await migrateAtomically(
      settings,
      image,
      [[app, "zero"], []],
      `resetting ${emptied.join(", ")}`,
    );
    // The tables are new: the owner's default privileges gave them to the app role; granted again all
    // the same, for a database whose defaults a restore of an older backup did not bring.
    await grantAppRights(settings);
    return taken;
  } finally {
    // Every serving container, not only those this run stopped: a killed earlier run left them stopped.
    const serving = await servingContainers(settings);
    if (serving.length) {
      await startEach(serving);
    }
  }
}

function reportReset(
  settings: Settings,
  emptied: readonly string[],
  apps: readonly string[],
  undo: string | undefined,
): void {
  const others = apps.filter((a) => !emptied.includes(a));
  say(
    `Reset ${emptied.join(", ")}: their tables are empty and re-created. ` +
      (others.length ? `Untouched: ${others.join(", ")}. ` : "") +
      "Media files are kept.",
  );
  if (emptied.includes("auth")) {
    say(
      "Every user is gone, the superuser too: the next `pulumi up` does not recreate it (the database is not new); restore the undo backup, or create one with `manage.py createsuperuser`.",
    );
  }
  if (undo) {
    say(`To undo, run: edms-ops restore ${undo} --stack ${settings.stack}${confirmFlag(settings)}`);
  }
}

/**
 * The other apps `migrate <app> zero` would unapply (from Django's plan); refused unless
 * `--with-dependents` names exactly them, so nobody empties an app they did not name.
 */
function requireDependentsNamed(
  app: string,
  plan: Record<string, string[]>,
  opts: { withDependents?: string },
): string[] {
  const dependents = Object.keys(plan)
    .filter((a) => a !== app)
    .sort();
  const named = (opts.withDependents ?? "")
    .split(",")
    .map((a) => a.trim())
    .filter(Boolean)
    .sort();
  if (dependents.join(",") !== named.join(",")) {
    const list = dependents.map((a) => `${a} (${plan[a].length} migration(s))`).join(", ");
    throw dependents.length
      ? refuse(
          `Resetting ${app} also empties ${list}: their migrations depend on ${app}'s, and \`migrate ${app} zero\` unapplies them.`,
          `To go ahead, name them: \`--with-dependents ${dependents.join(",")}\`. Nothing was changed.`,
        )
      : refuse(
          `${app} has no dependent apps;`,
          `drop \`--with-dependents ${opts.withDependents}\`. Nothing was changed.`,
        );
  }
  return dependents;
}
