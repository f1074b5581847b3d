import { Command } from "commander";
import { Settings } from "../../model/settings";
import { countOf, inventory, psql } from "../database/postgres";
import { writeBootstrapRecord } from "../store/bootstrap";
import { openStack } from "../core/context";
import { manage, runDjango } from "../database/django";
import { releaseReference } from "../../model/images";
import { failure } from "../core/errors";
import { progress, say } from "../core/log";
import { dataEvidence, dataSeen } from "../backup/emptyDatabase";

export function register(program: Command): void {
  program
    .command("bootstrap")
    .description(
      "First-deploy setup: load the edms:bootstrap fixtures into a new database (no users, and no deployment recorded onto it), create the superuser if absent. Never overwrites",
    )
    .addHelpText(
      "after",
      "\nRun by `pulumi up` for a new postgres volume; it gets the superuser password from the deploy.",
    )
    .action(async (_opts: unknown, command: Command) => {
      const settings = await openStack(command);
      const image = releaseReference(settings);
      const users = await countOf(settings, "auth_user");
      if (users === undefined) {
        throw failure(
          "bootstrap needs a migrated database (no auth_user table).",
          `Run \`edms-ops migrate --stack ${settings.stack}\` first.`,
        );
      }
      const { superuser, email } = settings.bootstrap;
      await loadFixtures(settings, image, users);
      const [exists] = await psql(
        settings,
        `SELECT count(*) FROM auth_user WHERE username = '${superuser.replace(/'/g, "''")}';`,
      );
      if (exists !== "0") {
        say(`superuser ${superuser} exists: left as it is`);
        await recordIfNew(settings, users);
        return;
      }
      progress(`creating superuser ${superuser}`);
      // The password goes from the uploaded file into createsuperuser's own process environment only.
      const script =
        'DJANGO_SUPERUSER_PASSWORD="$(cat "$DJANGO_SUPERUSER_PASSWORD_FILE")" exec python3 manage.py createsuperuser --noinput --username "$1" --email "$2"';
      const result = await runDjango(settings, {
        image,
        command: ["sh", "-c", script, "createsuperuser", superuser, email],
        superuser: true,
      });
      if (result.code !== 0) {
        throw failure(
          `creating superuser ${superuser} failed: ${result.stderr.trim().split("\n").pop()}`,
          "Fix `edms:bootstrap` (superuser, email) if the cause names it, then run `pulumi up` again.",
        );
      }
      say(`superuser ${superuser} created`);
      await recordIfNew(settings, users);
    });
}

/**
 * The fixtures, into a new database only. No users is not a new database: an app reset (`reset-app auth`)
 * leaves the others' rows, which the fixtures would overwrite by primary key. Only a database no deployment
 * was recorded onto gets them (emptyDatabase.ts: on production, whenever its cluster was made).
 */
async function loadFixtures(settings: Settings, image: string, users: number): Promise<void> {
  const { fixtures } = settings.bootstrap;
  if (users > 0 || fixtures.length === 0) {
    progress(`${users} user(s) present: fixtures not loaded`);
    return;
  }
  // Deployments only: one is recorded once a deploy is healthy, after bootstrap; a backup may be taken of
  // a first deploy that failed before its fixtures (the retry must still load them).
  const seen = dataSeen(await dataEvidence(settings, { backups: false }));
  if (seen) {
    say(
      `no users, but this database has served (it has ${seen}): fixtures not loaded over its rows. ` +
        `Load them by hand if they are wanted: \`python3 manage.py loaddata ${fixtures.join(" ")}\` in the web container.`,
    );
    return;
  }
  progress(`empty database: loading fixtures ${fixtures.join(", ")}`);
  await manage(settings, image, ["loaddata", ...fixtures], "loading fixtures");
}

/**
 * A database that had no user holds only what the bootstrap wrote: its row counts are recorded, so its
 * backups never push a backup of real data out of a repository (ops/store/bootstrap.ts).
 */
async function recordIfNew(settings: Settings, usersBefore: number): Promise<void> {
  if (usersBefore === 0) {
    await writeBootstrapRecord(settings, (await inventory(settings)).tables);
  }
}
