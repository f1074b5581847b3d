import { expect } from "chai";
import { parseCounts } from "../../../ops/database/postgres";
import { classifyRestoreErrors } from "../../../ops/database/sidedb";
import { inventoryProblems } from "../../../ops/backup/verify";

describe("restore beside the live database", function () {
  // pg_restore 15's own output for a dump whose grants name roles the server lacks (one ACL entry holding two
  // GRANTs, and a default-privileges entry), followed by an unrelated failure.
  const stderr = [
    'pg_restore: error: could not execute query: ERROR:  role "rep"x" does not exist',
    'Command was: GRANT SELECT ON TABLE public.d TO "rep""x";',
    "GRANT INSERT ON TABLE public.d TO plain;",
    "",
    "",
    'pg_restore: error: could not execute query: ERROR:  role "plain" does not exist',
    "Command was: ALTER DEFAULT PRIVILEGES FOR ROLE edms GRANT SELECT ON TABLES  TO plain;",
    "",
    "",
    'pg_restore: error: could not execute query: ERROR:  relation "public.x" does not exist',
    "Command was: ALTER TABLE ONLY public.x ADD CONSTRAINT x_pkey PRIMARY KEY (id);",
    "",
    "pg_restore: warning: errors ignored on restore: 3",
  ].join("\n");

  it("takes grants to missing roles (whole entries, raw role names) apart from other errors", function () {
    const { missingRoles, other } = classifyRestoreErrors(stderr);
    expect(missingRoles).to.deep.equal([
      {
        role: 'rep"x',
        command:
          'GRANT SELECT ON TABLE public.d TO "rep""x";\nGRANT INSERT ON TABLE public.d TO plain;',
      },
      {
        role: "plain",
        command: "ALTER DEFAULT PRIVILEGES FOR ROLE edms GRANT SELECT ON TABLES  TO plain;",
      },
    ]);
    expect(other).to.have.length(1);
    expect(other[0]).to.contain('relation "public.x" does not exist');
  });

  it("does not take a missing role outside a grant for a grant", function () {
    const { missingRoles, other } = classifyRestoreErrors(
      'pg_restore: error: could not execute query: ERROR:  role "app" does not exist\nCommand was: SET ROLE app;\n',
    );
    expect(missingRoles).to.deep.equal([]);
    expect(other).to.have.length(1);
  });

  it("reads counts whose table names hold tabs, newlines and unicode", function () {
    expect(
      parseCounts(['"auth_user"\t3', '"extra.t\\tab\\nnew Übersicht"\t7', "large objects\t20000"]),
    ).to.deep.equal({ auth_user: 3, "extra.t\tab\nnew Übersicht": 7, "large objects": 20000 });
  });

  it("compares other schemas and objects when the manifest has them, public tables only when it predates them", function () {
    const tables = { auth_user: 2, "extra.t": 1 };
    const objects = { views: 1, "large objects": 5 };
    expect(inventoryProblems({ tables: { auth_user: 2 } }, { tables, objects })).to.deep.equal([]);
    expect(
      inventoryProblems({ tables: { auth_user: 2 }, objects }, { tables, objects }),
    ).to.deep.equal(["table extra.t: not in the backup"]);
    expect(
      inventoryProblems({ tables, objects: { views: 1, "large objects": 6 } }, { tables, objects }),
    ).to.deep.equal(["objects: large objects: 5 != expected 6"]);
  });
});
