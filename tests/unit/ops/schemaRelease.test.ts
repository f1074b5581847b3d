import { expect } from "chai";
import {
  describeLabel,
  releaseOfSchema,
  sameMigrations,
  SchemaFacts,
} from "../../../ops/store/schemaRelease";

const v1 = { auth: "0012_alter_user_first_name_max_length", documents: "0001_initial" };
const v2 = { auth: "0012_alter_user_first_name_max_length", documents: "0002_document_slug" };

/** Facts with a running web that records whether it was asked. */
function facts(
  deployments: SchemaFacts["deployments"],
  restored: SchemaFacts["restored"] = null,
  running: string | null = "2.0.0",
): SchemaFacts & { asked: () => boolean } {
  let asked = false;
  return {
    deployments,
    restored,
    running: () => {
      asked = true;
      return Promise.resolve(running);
    },
    asked: () => asked,
  };
}

describe("backup release label from the database's migration state", function () {
  it("sameMigrations: the same apps at the same migration, in any key order", function () {
    expect(sameMigrations(v1, { documents: "0001_initial", auth: v1.auth })).to.equal(true);
    expect(sameMigrations(v1, v2)).to.equal(false);
    expect(sameMigrations(v1, { documents: "0001_initial" })).to.equal(false);
    expect(sameMigrations({ documents: "0001_initial" }, v1)).to.equal(false);
    expect(sameMigrations({}, {})).to.equal(true);
  });

  it("after restoring a backup of 1.0.0 while 2.0.0 ran: 1.0.0 (its deployment), not the stopped 2.0.0 web", async function () {
    const known = facts([
      { version: "1.0.0", migrations: v1 },
      { version: "2.0.0", migrations: v2 },
    ]);
    expect(await releaseOfSchema(v1, known)).to.deep.equal({
      release: "1.0.0",
      basis: "deployment",
    });
    expect(known.asked(), "the web is not asked when a record matches").to.equal(false);
    expect(await releaseOfSchema(v2, known)).to.deep.equal({
      release: "2.0.0",
      basis: "deployment",
    });
  });

  it("a database with no migrations (the undo of a restore onto an emptied one) is no release's, whatever runs", async function () {
    const known = facts([{ version: "1.0.0", migrations: {} }], null, "2.0.0");
    expect(await releaseOfSchema({}, known)).to.deep.equal({ release: null, basis: "empty" });
    expect(known.asked(), "the web is not asked").to.equal(false);
  });

  it("the newest matching deployment wins: a release redeployed after a rollback, two releases of one schema", async function () {
    const history = [
      { version: "1.0.0", migrations: v1 },
      { version: "1.0.1", migrations: v1 },
      { version: "2.0.0", migrations: v2 },
      { version: "1.0.0", migrations: v1 },
    ];
    expect((await releaseOfSchema(v1, facts(history))).release).to.equal("1.0.0");
    expect((await releaseOfSchema(v1, facts(history.slice(0, 3)))).release).to.equal("1.0.1");
  });

  it("a release never deployed here (imported backup, new host): the last restore's label when its migrations match", async function () {
    const restored = { release: "1.0.0", migrations: v1 };
    const known = facts([{ version: "2.0.0", migrations: v2 }], restored);
    expect(await releaseOfSchema(v1, known)).to.deep.equal({ release: "1.0.0", basis: "restore" });
    // A deployment seen with the same schema is stronger than what a backup's label said.
    const seen = facts([{ version: "0.9.0", migrations: v1 }], restored);
    expect((await releaseOfSchema(v1, seen)).release).to.equal("0.9.0");
    // A restore whose migrations are not the database's (migrated since) says nothing.
    const since = facts([], restored, "2.0.0");
    expect(await releaseOfSchema(v2, since)).to.deep.equal({ release: "2.0.0", basis: "running" });
    // Nor does a restored backup that had no label.
    const unlabelled = facts([], { release: null, migrations: v1 }, null);
    expect(await releaseOfSchema(v1, unlabelled)).to.deep.equal({ release: null, basis: "none" });
  });

  it("no record matches: the running web's release, said to be a guess; none when nothing runs", async function () {
    const known = facts([{ version: "1.0.0", migrations: v1 }], null, "1.0.0");
    const label = await releaseOfSchema(v2, known);
    expect(label).to.deep.equal({ release: "1.0.0", basis: "running" });
    expect(known.asked()).to.equal(true);
    expect(describeLabel(label)).to.match(/running web's \(no deployment or restore on record/);
    expect(await releaseOfSchema(v1, facts([], null, null))).to.deep.equal({
      release: null,
      basis: "none",
    });
  });
});
