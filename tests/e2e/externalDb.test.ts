/**
 * edms-ops' clients against an external PostgreSQL (issue 22's first step): a real server in a container of
 * its own, TLS only, reached over the network by name as a role that is not a superuser, the way a managed
 * database is. What is proven here is the connection layer every operation goes through (ops/database/server.ts):
 * verify-full TLS with the credentials from a volume, the reads a backup and a restore make, a dump by a client
 * of the server's major, and the up-front refusal of a restore the role lacks the rights for.
 */
import { expect } from "chai";
import * as path from "path";
import { loadSettings } from "../../ops/core/stack";
import {
  appRightsSql,
  appRoleSql,
  appSessionsGoneSql,
  backupRoleSql,
} from "../../ops/database/appRole";
import { inventory, migrationState, pgCommand, psql, runPg } from "../../ops/database/postgres";
import { requireRestoreRights, restoreRights } from "../../ops/database/rights";
import {
  asLogin,
  asProvider,
  externalAddress,
  externalServer,
  startExternalPostgres,
  stopExternalPostgres,
} from "../harness/externalPostgres";

const settings = loadSettings({ stack: "dev", projectDir: path.resolve(__dirname, "../..") });

describe("an external PostgreSQL: TLS, a role that is not a superuser, the rights a restore needs", function () {
  before(async function () {
    await startExternalPostgres();
  });
  after(async function () {
    await stopExternalPostgres();
  });

  it("connects over TLS verified against the CA and the server's name, as the admin role, which is no superuser", async function () {
    const [row] = await psql(
      settings,
      "SELECT current_user, s.ssl, s.version LIKE 'TLS%', r.rolsuper FROM pg_stat_ssl s, pg_roles r WHERE s.pid = pg_backend_pid() AND r.rolname = current_user;",
      externalServer(),
    );
    expect(row).to.equal("edms_admin\tt\tt\tf");
  });

  it("refuses a server whose certificate another CA signed, and a host name the certificate does not carry", async function () {
    const foreign = await runPg(
      pgCommand(externalServer("foreignCa"), "psql", ["-d", "edms", "-c", "SELECT 1"]),
      { allowFailure: true },
    );
    expect(foreign.code).to.not.equal(0);
    expect(foreign.stderr).to.match(/certificate verify failed/);
    const byAddress = externalServer("admin", { host: await externalAddress() });
    const wrongName = await runPg(pgCommand(byAddress, "psql", ["-d", "edms", "-c", "SELECT 1"]), {
      allowFailure: true,
    });
    expect(wrongName.code).to.not.equal(0);
    expect(wrongName.stderr).to.match(/does not match host name/);
    // The same address, without asking for the name to match: reached (so the refusal above was the name's).
    const [one] = await psql(settings, "SELECT 1;", { ...byAddress, sslMode: "verify-ca" });
    expect(one).to.equal("1");
  });

  it("reads what a backup records (rows, objects, owners, migrations) and dumps with a client of the server's major", async function () {
    await psql(
      settings,
      [
        "CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL);",
        "INSERT INTO documents (title) SELECT 'doc ' || g FROM generate_series(1, 250) g;",
        "CREATE TABLE django_migrations (id serial PRIMARY KEY, app text, name text, applied timestamptz);",
        "INSERT INTO django_migrations (app, name, applied) VALUES ('documents', '0001_initial', now());",
      ].join("\n"),
      externalServer(),
    );
    const found = await inventory(settings, externalServer());
    expect(found.tables).to.deep.equal({ documents: 250, django_migrations: 1 });
    expect(found.state.owner).to.equal("edms_admin");
    expect(found.state.owners).to.deep.include({ "relations owned by edms_admin": 4 });
    expect(await migrationState(settings, externalServer())).to.deep.equal({
      documents: "0001_initial",
    });
    const dump = await runPg(pgCommand(externalServer(), "pg_dump", ["-d", "edms", "-Fc"]));
    expect(dump.stdout.startsWith("PGDMP")).to.equal(true);
    expect(await asProvider("SELECT count(*) FROM documents;")).to.equal("250");
  });

  it("names each right a restore lacks, with the statement that grants it, before changing anything", async function () {
    await requireRestoreRights(settings, externalServer(), "edms");
    const limited = externalServer("limited");
    expect(await restoreRights(settings, limited, "edms")).to.deep.include({
      role: "edms_limited",
      superuser: false,
      createdb: false,
      owner: false,
      signal: false,
      maintenance: true,
    });
    const refusal = await requireRestoreRights(settings, limited, "edms").then(
      () => undefined,
      (err: Error) => err.message,
    );
    expect(refusal).to.match(
      /Role edms_limited on db\.external\.test:5432 cannot restore database edms/,
    );
    expect(refusal).to.include('ALTER ROLE "edms_limited" CREATEDB;');
    expect(refusal).to.include('ALTER DATABASE "edms" OWNER TO "edms_limited";');
    expect(refusal).to.include('GRANT pg_signal_backend TO "edms_limited";');
    // Granted by the provider, the same role passes; nothing else about the database changed meanwhile.
    await asProvider(
      "ALTER ROLE edms_limited CREATEDB; GRANT pg_signal_backend TO edms_limited; ALTER DATABASE edms OWNER TO edms_limited;",
    );
    await requireRestoreRights(settings, limited, "edms");
    expect(await asProvider("SELECT count(*) FROM documents;")).to.equal("250");
  });
});

describe("an external PostgreSQL: the application and backup roles made by an admin that is no superuser", function () {
  before(async function () {
    await startExternalPostgres();
    await psql(
      settings,
      "CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL); INSERT INTO documents (title) VALUES ('a');",
      externalServer(),
    );
  });
  after(async function () {
    await stopExternalPostgres();
  });

  it("creates both roles with their logins (again on a re-run), not superusers, and grants the app the rows of the admin's tables", async function () {
    for (let run = 0; run < 2; run += 1) {
      await psql(settings, appRoleSql("app-pw-1"), externalServer(), {}, "postgres");
      const said = await psql(
        settings,
        backupRoleSql("backup-pw-1"),
        externalServer(),
        {},
        "postgres",
      );
      // PostgreSQL 15: CREATEROLE may grant pg_read_all_data, only a superuser gives BYPASSRLS (said so).
      expect(said.join("\n")).to.match(/may not give edms_backup BYPASSRLS/);
      expect(await psql(settings, appRightsSql("edms"), externalServer())).to.deep.equal([
        "granted",
      ]);
    }
    expect(
      await asProvider(
        "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname IN ('edms_app', 'edms_backup') ORDER BY 1;",
      ),
    ).to.equal("edms_app|t|f|f|f|f\nedms_backup|t|f|f|f|f");
    const app = await asLogin(
      "edms_app",
      "app-pw-1",
      "INSERT INTO documents (title) VALUES ('b'); SELECT count(*) FROM documents;",
    );
    expect(app.stdout.trim(), app.stderr).to.equal("2");
    const truncate = await asLogin("edms_app", "app-pw-1", "TRUNCATE documents;");
    expect(truncate.stderr).to.match(/permission denied/);
    const backup = await asLogin("edms_backup", "backup-pw-1", "SELECT count(*) FROM documents;");
    expect(backup.stdout.trim(), backup.stderr).to.equal("2");
    // A table the admin creates later (a migration) is the app's by the default privileges.
    await psql(
      settings,
      "CREATE TABLE later (v int); INSERT INTO later VALUES (1);",
      externalServer(),
    );
    const later = await asLogin(
      "edms_app",
      "app-pw-1",
      "UPDATE later SET v = 2; SELECT v FROM later;",
    );
    expect(later.stdout.trim(), later.stderr).to.equal("2");
  });

  it("ends a session the application role left open on the stack's database, with pg_signal_backend", async function () {
    const open = asLogin("edms_app", "app-pw-1", "SELECT pg_sleep(60);");
    for (let i = 0; i < 50; i += 1) {
      if (
        (await asProvider("SELECT count(*) FROM pg_stat_activity WHERE usename = 'edms_app';")) ===
        "1"
      ) {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await psql(settings, appSessionsGoneSql("edms"), externalServer(), {}, "postgres");
    const ended = await open;
    expect(ended.code).to.not.equal(0);
    expect(ended.stderr).to.match(/terminating connection due to administrator command/);
  });
});
