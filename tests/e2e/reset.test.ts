/** Staging: weekly fresh reset, dataGeneration bump, partial reset of one app, bad inputs. */
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import { ops, PROJECT_DIR, TestStack } from "../harness/stack";

async function freshDatabase(stack: TestStack): Promise<void> {
  expect(
    await stack.psql("SELECT string_agg(username, ',' ORDER BY username) FROM auth_user;"),
  ).to.equal("admin,records-office");
  expect(await stack.psql("SELECT count(*) FROM documents_document;")).to.equal("0");
  expect(
    await stack.psql("SELECT string_agg(key, ',' ORDER BY key) FROM systemsettings_systemsetting;"),
  ).to.equal("max_upload_mb,retention_days,site_name");
  const health = await stack.ops(["health"]);
  expect(health.code, health.stdout + health.stderr).to.equal(0);
}

/** Database-level state, a limited role's SECURITY DEFINER function and table (issue 19, item 9). */
const DATABASE_STATE_SQL = `
CREATE ROLE "limited ü" NOLOGIN; CREATE ROLE reader NOLOGIN;
ALTER DATABASE edms SET work_mem = '12MB';
ALTER DATABASE edms SET search_path = "$user", public;
ALTER ROLE reader IN DATABASE edms SET statement_timeout = '7s';
REVOKE ALL ON DATABASE edms FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE edms TO reader;
GRANT CREATE ON DATABASE edms TO "limited ü" WITH GRANT OPTION;
COMMENT ON DATABASE edms IS 'EDMS records';
ALTER DATABASE edms CONNECTION LIMIT 90;
CREATE FUNCTION public.whoami() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text';
ALTER FUNCTION public.whoami() OWNER TO "limited ü";
CREATE TABLE public.limited_notes (note text);
ALTER TABLE public.limited_notes OWNER TO "limited ü";
`;

/** What DATABASE_STATE_SQL sets, read back one fact per key. */
async function databaseState(stack: TestStack): Promise<Record<string, string>> {
  const lines = (
    await stack.psql(
      [
        "SELECT coalesce(string_agg(coalesce(r.rolname, '-') || ':' || array_to_string(s.setconfig, '|'), ',' ORDER BY r.rolname NULLS FIRST), '-') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = current_database();",
        "SELECT coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(datacl) a), '-') FROM pg_database WHERE datname = current_database();",
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '-') || ' / ' || datconnlimit FROM pg_database WHERE datname = current_database();",
        "SELECT public.whoami();",
        "SELECT tableowner FROM pg_tables WHERE tablename = 'limited_notes';",
        "SELECT coalesce((SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'reader'), 'absent');",
      ].join("\n"),
    )
  ).split("\n");
  const [settings, privileges, comment, whoami, tableOwner, reader] = lines;
  return { settings, privileges, comment, whoami, tableOwner, reader };
}

describe("e2e: staging resets", function () {
  const stack = new TestStack("stg", "staging", {
    "edms:version": "2.0.0",
    "edms:backup": { beforeDeploy: true, keep: 5 },
  });
  before(async () => {
    await stack.freshDeploy();
    await stack.seed("s");
  });
  after(() => stack.destroy());

  it("5. reset-app documents: documents gone, users and settings intact, undo printed", async function () {
    const before = await stack.fingerprint();
    expect(before.documents_document).to.match(/^3:/);
    const refused = await stack.ops(["reset-app", "documents"]);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.contain("needs `--confirm stg`");
    const result = await stack.ops(["reset-app", "documents", "--confirm", "stg"]);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/To undo, run: edms-ops restore \S+-pre-reset-app --stack stg/);
    const after = await stack.fingerprint();
    expect(after.documents_document).to.equal("0:-");
    for (const table of [
      "auth_user",
      "auth_group",
      "auth_user_groups",
      "systemsettings_systemsetting",
    ]) {
      expect(after[table], table).to.equal(before[table]);
    }
    expect(
      await stack.psql("SELECT max(name) FROM django_migrations WHERE app = 'documents';"),
    ).to.equal("0002_document_slug");
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("5b. reset-app auth: refused until its dependents are named, then all of them emptied and re-migrated, the rest untouched", async function () {
    await stack.seed("auth");
    const before = await stack.fingerprint();
    const refused = await stack.ops(["reset-app", "auth", "--confirm", "stg"]);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.match(
      /Resetting auth also empties admin \(\d+ migration\(s\)\), documents \(\d+ migration\(s\)\)/,
    );
    expect(refused.stderr).to.contain("--with-dependents admin,documents");
    const wrong = await stack.ops([
      "reset-app",
      "auth",
      "--with-dependents",
      "documents",
      "--confirm",
      "stg",
    ]);
    expect(wrong.code).to.equal(2);
    expect(await stack.fingerprint()).to.deep.equal(before);

    const result = await stack.ops([
      "reset-app",
      "auth",
      "--with-dependents",
      "documents,admin",
      "--confirm",
      "stg",
    ]);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.contain("Reset auth, admin, documents");
    expect(result.stdout).not.to.contain("other apps untouched");
    expect(result.stdout).to.match(/Untouched: .*systemsettings/);
    const after = await stack.fingerprint();
    for (const table of ["auth_user", "auth_group", "documents_document"]) {
      expect(after[table], table).to.equal("0:-");
    }
    expect(after.systemsettings_systemsetting).to.equal(before.systemsettings_systemsetting);
    // Every migration is applied again (the dependents' too), so the release is healthy.
    expect(
      await stack.psql("SELECT max(name) FROM django_migrations WHERE app = 'documents';"),
    ).to.equal("0002_document_slug");
    expect((await stack.ops(["health"])).code).to.equal(0);
    // The printed undo brings all of it back.
    const undo = /edms-ops restore (\S+-pre-reset-app)/.exec(result.stdout)?.[1];
    expect((await stack.ops(["restore", String(undo)])).code).to.equal(0);
    expect(await stack.fingerprint()).to.deep.equal(before);
  });

  it("5c. a restore brings back the database's settings, privileges, comment and role settings, and keeps owners; verify and drill compare them", async function () {
    await stack.psql(DATABASE_STATE_SQL);
    const backup = await stack.ops(["backup", "--reason", "dbstate"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const id = backup.stdout.trim();
    const atBackup = await databaseState(stack);
    expect(atBackup.whoami).to.equal("limited ü");
    // Everything changed between the backup and the restore; a role gone, as on a new host.
    await stack.psql(`
ALTER DATABASE edms RESET ALL; ALTER ROLE reader IN DATABASE edms RESET ALL;
GRANT ALL ON DATABASE edms TO PUBLIC; REVOKE ALL ON DATABASE edms FROM reader;
COMMENT ON DATABASE edms IS NULL; ALTER DATABASE edms CONNECTION LIMIT -1;
ALTER FUNCTION public.whoami() OWNER TO edms; ALTER TABLE public.limited_notes OWNER TO edms;
DROP ROLE reader;`);
    const changed = await databaseState(stack);
    for (const key of Object.keys(atBackup) as (keyof typeof atBackup)[]) {
      expect(changed[key], `${key} was not changed before the restore`).not.to.equal(atBackup[key]);
    }

    const verify = await stack.ops(["verify", id]);
    expect(verify.code, verify.stdout + verify.stderr).to.equal(0);
    const drill = await stack.ops(["drill", id, "--json"]);
    expect(drill.code, drill.stdout + drill.stderr).to.equal(0);
    const checks = (JSON.parse(drill.stdout) as { checks: { name: string; detail: string }[] })
      .checks;
    expect(checks.find((c) => c.name === "database restore")?.detail).to.contain(
      "owners, grants and database settings restored",
    );

    const restored = await stack.ops(["restore", id]);
    expect(restored.code, restored.stderr).to.equal(0);
    expect(restored.stdout).to.match(/Created role\(s\) reader \(NOLOGIN\)/);
    expect(restored.stderr).to.contain("ANALYZE");
    expect(await databaseState(stack)).to.deep.equal(atBackup);
    // Statistics came with the restore (3 documents: far below autovacuum's threshold).
    expect(
      await stack.psql(
        "SELECT count(*) > 0 FROM pg_statistic s JOIN pg_class c ON c.oid = s.starelid WHERE c.relname = 'documents_document';",
      ),
    ).to.equal("t");
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("1a. weekly fresh reset: reset, re-apply → empty database with superuser and fixtures only, new volumes", async function () {
    const volumesBefore = await postgresVolumeCreated(stack);
    const result = await stack.ops(["reset", "--confirm", "stg"]);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/Will reset stg/);
    expect(result.stdout).to.match(
      /To undo, deploy, then run: edms-ops restore \S+-pre-reset --stack stg/,
    );
    expect(await stack.volumes()).to.deep.equal([`${stack.prefix}_backups`]);
    const { error, hooks } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.include.members(["migrate", "bootstrap"]);
    await freshDatabase(stack);
    const volumesAfter = await postgresVolumeCreated(stack);
    expect(volumesAfter).not.to.equal(volumesBefore);
    const ids = await stack.backupIds();
    expect(ids.some((id) => id.endsWith("-pre-reset"))).to.equal(true);
  });

  it("1b. a dataGeneration bump gives the same: new _g1 volumes, superuser and fixtures only; a stopped postgres is started for the earlier generation's backup", async function () {
    await stack.seed("g");
    const earlier = await stack.fingerprint();
    await docker(["stop", `${stack.prefix}-postgres`]);
    stack.set("edms:dataGeneration", 1);
    const { error, hooks } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.include.members([
      "freshStartBackup",
      "migrate",
      "bootstrap",
    ]);
    const undo = (await stack.backupIds()).filter((id) => id.endsWith("-pre-fresh-start"));
    expect(undo, "the earlier generation backed up before the fresh start").to.have.length(1);
    expect(await stack.volumes()).to.include.members([
      `${stack.prefix}_postgres_data_g1`,
      `${stack.prefix}_media_files_g1`,
    ]);
    await freshDatabase(stack);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.volumes).to.have.property(`${stack.prefix}_postgres_data_g1`).that.is.a("number");
    // The undo of the fresh start: the earlier generation's data, restored into the new volumes.
    const restored = await stack.ops(["restore", undo[0]]);
    expect(restored.code, restored.stderr).to.equal(0);
    expect(await stack.fingerprint()).to.deep.equal(earlier);
    // The replaced volumes go at the end of the successful update (staging: not retained).
    expect(await stack.volumes()).to.have.members([
      `${stack.prefix}_postgres_data_g1`,
      `${stack.prefix}_media_files_g1`,
      `${stack.prefix}_redis_data_g1`,
      stack.backupsVolume,
    ]);
  });

  it("1c. reset with postgres stopped takes the backup it announces (postgres started for it); with its container gone but its volume there it refuses", async function () {
    await stack.seed("stopped", 1, 1024);
    const before = await stack.fingerprint();
    const earlier = await stack.backupIds();
    await docker(["stop", `${stack.prefix}-postgres`]);
    const result = await stack.ops(["reset", "--confirm", "stg"]);
    expect(result.code, result.stderr).to.equal(0);
    const taken = (await stack.backupIds()).filter((id) => !earlier.includes(id));
    expect(taken, "the announced backup").to.have.length(1);
    expect(result.stdout).to.contain(`edms-ops restore ${taken[0]} --stack stg`);
    // The undo gives back what the stopped stack held.
    expect((await stack.up()).error).to.equal(undefined);
    expect((await stack.ops(["restore", taken[0]])).code).to.equal(0);
    expect(await stack.fingerprint()).to.deep.equal(before);
    // No postgres container to dump its volume with: nothing is removed.
    await docker(["rm", "-f", `${stack.prefix}-postgres`]);
    const volumes = await stack.volumes();
    const refused = await stack.ops(["reset", "--confirm", "stg"]);
    expect(refused.code, refused.stderr).to.equal(2);
    expect(refused.stderr).to.contain(
      // 1b left the stack at data generation 1.
      `postgres container is missing but its volume ${stack.prefix}_postgres_data_g1 is there`,
    );
    expect(await stack.volumes()).to.deep.equal(volumes);
    expect((await stack.up()).error).to.equal(undefined);
  });

  it("1d. a changed namePrefix or environment, or another stack given its prefix, is refused before anything is declared: database, media, backups and containers untouched", async function () {
    const volumes = await stack.volumes();
    const format = "{{.ID}} {{.Names}} {{.State}}";
    const containers = await stack.containers({ all: true, format });
    const before = await stack.fingerprint();
    const moved = `${stack.prefix}-moved`;
    stack.set("edms:namePrefix", moved);
    try {
      const { error, hooks } = await stack.up();
      expect(error?.message).to.contain(`\`edms:namePrefix\` is \`${moved}\``);
      expect(error?.message).to.contain(`${stack.backupsVolume}, ${stack.prefix}_media_files`);
      expect(error?.message).to.contain(
        `\`pulumi config set edms:namePrefix ${stack.prefix} --stack ${stack.name}\``,
      );
      expect(hooks, "no hook ran").to.deep.equal([]);
    } finally {
      stack.set("edms:namePrefix", stack.prefix);
    }
    // Its environment label, and another stack given its prefix (or this one after `pulumi stack rename`).
    stack.set("edms:environment", "dev");
    try {
      const { error, hooks } = await stack.up();
      expect(error?.message).to.contain(
        "are labelled environment `staging`, and it is configured as `dev`",
      );
      expect(hooks, "no hook ran").to.deep.equal([]);
    } finally {
      stack.set("edms:environment", "staging");
    }
    const twin = new TestStack("stg-twin", "staging", { "edms:namePrefix": stack.prefix });
    try {
      const { error, hooks } = await twin.up();
      expect(error?.message).to.contain(
        `\`edms:namePrefix\` \`${stack.prefix}\` names volumes of stack \`${stack.name}\``,
      );
      expect(hooks, "no hook ran").to.deep.equal([]);
    } finally {
      fs.rmSync(path.join(PROJECT_DIR, `Pulumi.${twin.name}.yaml`), { force: true });
    }
    expect(await stack.volumes()).to.deep.equal(volumes);
    expect(await stack.containers({ all: true, format })).to.deep.equal(containers);
    expect(await stack.fingerprint()).to.deep.equal(before);
    expect(
      (await docker(["volume", "ls", "-q", "--filter", `name=${moved}`])).stdout.trim(),
    ).to.equal("");
  });

  describe("7. bad inputs: a clear error, exit non-zero, nothing changed", function () {
    let before: Record<string, string>;
    beforeEach(async () => (before = await stack.fingerprint()));
    afterEach(async () => expect(await stack.fingerprint()).to.deep.equal(before));

    const cases: [string, () => Promise<{ code: number; stderr: string }>, RegExp][] = [
      [
        "unknown stack",
        () => ops(["status", "--stack", "nosuch"]),
        /Unknown stack `nosuch`: there is no .*Pulumi\.nosuch\.yaml\. Known stacks: .*stg/,
      ],
      [
        "unknown backup id",
        () => stack.ops(["restore", "2020-01-01T00-00-00Z-manual"]),
        /No backup 2020-01-01T00-00-00Z-manual in e2e-stg_backups/,
      ],
      ["not a backup id", () => stack.ops(["verify", "../etc"]), /`\.\.\/etc` is not a backup id/],
      [
        "missing --confirm",
        () => stack.ops(["reset"]),
        /reset on stack `stg` needs `--confirm stg`\. Nothing was changed\./,
      ],
      [
        "wrong confirm word",
        () => stack.ops(["reset", "--confirm", "staging"]),
        /--confirm `staging` does not match the stack `stg`\. Nothing was changed\./,
      ],
      [
        "unknown app",
        () => stack.ops(["reset-app", "invoices", "--confirm", "stg"]),
        /Unknown app `invoices`: stack stg has migrations for admin, auth, .*documents/,
      ],
      [
        "an app label a plain object inherits",
        () => stack.ops(["reset-app", "constructor", "--confirm", "stg"]),
        /Unknown app `constructor`: stack stg has migrations for admin, auth, .*documents/,
      ],
      ["unknown flag", () => stack.ops(["backup", "--reasn", "x"]), /unknown option '--reasn'/],
      ["bad --wait", () => stack.ops(["health", "--wait", "soon"]), /--wait takes seconds ≥ 0/],
    ];
    for (const [what, run, message] of cases) {
      it(what, async function () {
        const result = await run();
        expect(result.code, result.stderr).to.be.greaterThan(0);
        expect(result.stderr).to.match(message);
      });
    }

    it("stack file with a bad key", async function () {
      const file = path.join(PROJECT_DIR, "Pulumi.badkey.yaml");
      fs.writeFileSync(
        file,
        "config:\n  edms:environment: staging\n  edms:version: 2.0.0\n  edms:namePrefix: e2e-stg\n  edms:keepBackups: 3\n  edms:httpPort: 99999\n",
      );
      const result = await ops(["reset", "--stack", "badkey", "--confirm", "badkey"]);
      fs.rmSync(file);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.match(/`edms:keepBackups` is not a known setting/);
      expect(result.stderr).to.match(/`edms:httpPort` must be 1–65535/);
      expect(result.stderr).to.match(/nothing was changed/);
    });
  });
});

/** When the stack's postgres volume was created: a new one after a fresh start. */
async function postgresVolumeCreated(stack: TestStack): Promise<string> {
  const inspected = await docker([
    "volume",
    "inspect",
    "-f",
    "{{.CreatedAt}}",
    `${stack.prefix}_postgres_data`,
  ]);
  return inspected.stdout.trim();
}
