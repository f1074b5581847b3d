import { expect } from "chai";
import { applyDatabaseStateSql, setClause, splitSettingList } from "../../../ops/database/dbstate";
import { parseDatabaseState } from "../../../ops/database/postgres";
import { classifyRestoreErrors } from "../../../ops/database/sidedb";
import { inventoryProblems } from "../../../ops/backup/verify";
import { DatabaseState, parseManifest } from "../../../ops/store/manifest";

describe("the database's own state (settings, privileges, comment, owners)", function () {
  const state: DatabaseState = {
    owner: "edms",
    connectionLimit: 50,
    comment: "the 'edms' database",
    acl: [
      { grantee: "edms", grantor: "edms", privilege: "CONNECT", grantable: false },
      { grantee: "rep", grantor: "lim", privilege: "CREATE", grantable: false },
      { grantee: "lim", grantor: "edms", privilege: "CREATE", grantable: true },
    ],
    settings: ["work_mem=64MB", 'search_path="$user", public, "a ""b"""'],
    roleSettings: { "reporting ü": ["statement_timeout=5s"] },
    owners: { "security definer functions owned by lim": 1, "relations owned by edms": 4 },
    roles: ["edms", "lim", "rep", "reporting ü"],
  };

  it("splits list settings as PostgreSQL does and quotes each item as pg_dump does", function () {
    expect(splitSettingList('"$user", public, "a ""b"""')).to.deep.equal([
      "$user",
      "public",
      'a "b"',
    ]);
    expect(setClause('search_path="$user", public')).to.equal(
      `SET "search_path" TO '$user', 'public'`,
    );
    // Not a list setting: the whole value is one string, commas and '=' included.
    expect(setClause("my.x=a=b, c")).to.equal(`SET "my.x" TO 'a=b, c'`);
  });

  it("applies the state to the named database: owner grants first, another grantor's as that role", function () {
    const sql = applyDatabaseStateSql(state, "edms_restore").split("\n");
    expect(sql).to.include(`ALTER DATABASE "edms_restore" SET "work_mem" TO '64MB';`);
    expect(sql).to.include(
      `ALTER ROLE "reporting ü" IN DATABASE "edms_restore" SET "statement_timeout" TO '5s';`,
    );
    expect(sql).to.include(`COMMENT ON DATABASE "edms_restore" IS 'the ''edms'' database';`);
    expect(sql).to.include(`ALTER DATABASE "edms_restore" CONNECTION LIMIT 50;`);
    expect(sql).to.include(`REVOKE ALL ON DATABASE "edms_restore" FROM PUBLIC;`);
    const lim = sql.indexOf(`GRANT CREATE ON DATABASE "edms_restore" TO "lim" WITH GRANT OPTION;`);
    const rep = sql.indexOf(`GRANT CREATE ON DATABASE "edms_restore" TO "rep";`);
    expect(lim).to.be.above(-1);
    expect(rep).to.be.above(lim);
    expect(sql[rep - 1]).to.equal(`SET ROLE "lim";`);
    expect(sql.join("\n")).not.to.match(/DATABASE "edms"[^_]/);
  });

  it("default privileges (a NULL acl) revoke nothing", function () {
    expect(applyDatabaseStateSql({ ...state, acl: null }, "d")).not.to.contain("REVOKE");
  });

  it("reads psql's JSON line and refuses anything else", function () {
    expect(parseDatabaseState([JSON.stringify(state)])).to.deep.equal(state);
    expect(() => parseDatabaseState(['{"owner": "edms"}'])).to.throw(/not what edms-ops expects/);
  });

  it("names every difference: a setting, a role setting, a privilege, the comment, an owner", function () {
    const manifest = { tables: {}, objects: {}, databaseState: state };
    const same = { tables: {}, objects: {}, state };
    expect(inventoryProblems(manifest, same)).to.deep.equal([]);
    const changed: DatabaseState = {
      ...state,
      comment: null,
      settings: ["work_mem=4MB"],
      roleSettings: {},
      acl: state.acl!.slice(1),
      owners: { "functions owned by edms": 1, "relations owned by edms": 4 },
    };
    expect(inventoryProblems(manifest, { ...same, state: changed })).to.have.members([
      "database: comment: (none) != expected the 'edms' datab",
      "database: setting work_mem: 4MB != expected 64MB",
      'database: setting search_path: missing (expected "$user", public,)',
      "database: setting statement_timeout for reporting ü: missing (expected 5s)",
      "database: privilege CONNECT to edms by edms: missing (expected granted)",
      "database: security definer functions owned by lim: missing (expected 1)",
      "database: functions owned by edms: not in the backup",
    ]);
    // Ownership flattened to the superuser, as `pg_restore --no-owner` does, is a difference.
    expect(
      inventoryProblems(manifest, {
        ...same,
        state: {
          ...state,
          owners: { "security definer functions owned by edms": 1, "relations owned by edms": 4 },
        },
      }),
    ).to.have.length(2);
    // A backup from before `databaseState`: nothing of it compared.
    expect(
      inventoryProblems({ tables: {}, objects: {} }, { ...same, state: changed }),
    ).to.deep.equal([]);
  });

  it("after a restore's swap, the CONNECT grants it gave the app and backup roles are not the backup's", function () {
    // What psql printed on PostgreSQL 15 for a database with NULL acl after the restore's two grants.
    const afterGrants = parseDatabaseState([
      '{"owner" : "edms", "connectionLimit" : -1, "comment" : null, "acl" : [{"grantee" : null, "grantor" : "edms", "privilege" : "CONNECT", "grantable" : false}, {"grantee" : null, "grantor" : "edms", "privilege" : "TEMPORARY", "grantable" : false}, {"grantee" : "edms", "grantor" : "edms", "privilege" : "CONNECT", "grantable" : false}, {"grantee" : "edms", "grantor" : "edms", "privilege" : "CREATE", "grantable" : false}, {"grantee" : "edms", "grantor" : "edms", "privilege" : "TEMPORARY", "grantable" : false}, {"grantee" : "edms_app", "grantor" : "edms", "privilege" : "CONNECT", "grantable" : false}, {"grantee" : "edms_backup", "grantor" : "edms", "privilege" : "CONNECT", "grantable" : false}], "settings" : [], "roleSettings" : {}, "owners" : { "schemas owned by edms" : 1, "relations owned by edms" : 3, "schemas owned by pg_database_owner" : 1 }, "roles" : ["edms", "edms_app", "edms_backup"]}',
    ]);
    const live = { tables: {}, objects: {}, state: afterGrants };
    // A backup from before the grants (default privileges), and one from before the backup role.
    const beforeGrants = { ...afterGrants, acl: null, roles: ["edms"] };
    const beforeBackupRole = {
      ...afterGrants,
      acl: afterGrants.acl!.filter((g) => g.grantee !== "edms_backup"),
    };
    for (const databaseState of [beforeGrants, beforeBackupRole, afterGrants]) {
      const manifest = { tables: {}, objects: {}, databaseState };
      expect(inventoryProblems(manifest, live, { afterRestoreGrants: true })).to.deep.equal([]);
    }
    expect(
      inventoryProblems({ tables: {}, objects: {}, databaseState: beforeGrants }, live),
      "before the swap (and in verify) every grant counts",
    ).to.include("database: privileges: missing (expected default)");
    // Any other difference still counts: PUBLIC's CONNECT revoked in the backup, not in the restored one.
    const revoked = {
      ...afterGrants,
      acl: afterGrants.acl!.filter((g) => !(g.grantee === null && g.privilege === "CONNECT")),
    };
    expect(
      inventoryProblems({ tables: {}, objects: {}, databaseState: revoked }, live, {
        afterRestoreGrants: true,
      }),
    ).to.include("database: privileges: not in the backup");
  });

  it("takes an owner that names a missing role for a fixable entry", function () {
    const { missingRoles } = classifyRestoreErrors(
      'pg_restore: error: could not execute query: ERROR:  role "lim" does not exist\nCommand was: ALTER FUNCTION public.f() OWNER TO lim;\n',
    );
    expect(missingRoles).to.deep.equal([
      { role: "lim", command: "ALTER FUNCTION public.f() OWNER TO lim;" },
    ]);
  });

  it("a manifest without databaseState still reads; one with a malformed databaseState is not trusted", function () {
    const manifest = {
      format: 2,
      id: "2026-11-25T14-00-00Z-manual",
      database: { file: "db.dump", bytes: 1, sha256: "a".repeat(64) },
      tables: {},
      migrations: {},
    };
    expect(parseManifest(JSON.stringify(manifest))).not.to.have.property("databaseState");
    expect(
      parseManifest(JSON.stringify({ ...manifest, databaseState: state })).databaseState,
    ).to.deep.equal(state);
    expect(() =>
      parseManifest(JSON.stringify({ ...manifest, databaseState: { ...state, settings: "x" } })),
    ).to.throw(/unreadable databaseState/);
  });
});
