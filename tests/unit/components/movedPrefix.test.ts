import { expect } from "chai";
import { movedPrefixProblem } from "../../../model/config/names";
import { runProgram } from "../../harness/mocks";

describe("a stack whose data is on the host under another edms:namePrefix", function () {
  describe("movedPrefixProblem", function () {
    it("none when every data volume of the stack carries the prefix, at any data generation", function () {
      const volumes = [
        { name: "shop_backups", role: "backups" },
        { name: "shop_postgres_data", role: "postgres" },
        { name: "shop_postgres_data_g3", role: "postgres" },
        { name: "shop_media_files_g3", role: "media" },
        // Not data: a cache and credentials volumes named otherwise change nothing.
        { name: "other_redis_data", role: "redis" },
        { name: "other_db_credentials", role: "database-credentials" },
      ];
      expect(movedPrefixProblem("stg", "shop", volumes)).to.equal(undefined);
      expect(movedPrefixProblem("stg", "shop", [])).to.equal(undefined);
    });

    it("names the volumes, says nothing was changed and how to set the prefix back", function () {
      const problem = movedPrefixProblem("stg", "shop-new", [
        { name: "shop_postgres_data", role: "postgres" },
        { name: "shop_backups", role: "backups" },
        { name: "shop-new_backups", role: "backups" },
      ]);
      expect(problem).to.contain("`edms:namePrefix` is `shop-new`");
      expect(problem).to.contain("shop_backups, shop_postgres_data.");
      expect(problem).not.to.contain("shop-new_backups,");
      expect(problem).to.contain("Nothing was changed");
      expect(problem).to.contain("`pulumi config set edms:namePrefix shop --stack stg`");
      expect(problem).to.contain("Renaming a stack's prefix");
    });

    it("a prefix that is a longer or shorter form of the configured one is another prefix", function () {
      for (const [configured, found] of [
        ["shop", "shop-x_backups"],
        ["shop-x", "shop_media_files"],
        ["shop", "xshop_postgres_data_g1"],
      ]) {
        const role = found.includes("backups")
          ? "backups"
          : found.includes("media")
            ? "media"
            : "postgres";
        expect(movedPrefixProblem("stg", configured, [{ name: found, role }]), found).to.contain(
          found,
        );
      }
    });

    it("volumes of two other prefixes, or a data volume named unlike the program's, get no single prefix to go back to", function () {
      for (const volumes of [
        [
          { name: "a_backups", role: "backups" },
          { name: "b_postgres_data", role: "postgres" },
        ],
        [{ name: "handmade", role: "backups" }],
        [{ name: "shop_backups_old", role: "backups" }],
      ]) {
        const problem = movedPrefixProblem("stg", "shop", volumes);
        expect(problem, volumes[0].name).to.contain(
          "set `edms:namePrefix` back to the prefix of those volumes",
        );
      }
    });
  });

  describe("the program", function () {
    it("stops before declaring anything when the stack's backups are on the host under the old prefix", async function () {
      const run = await runProgram({
        stack: "staging",
        overrides: { "edms:namePrefix": "renamed" },
        hostVolumes: [
          { name: "edms-staging_backups", role: "backups" },
          { name: "edms-staging_postgres_data", role: "postgres" },
        ],
      });
      expect(run.error?.name).to.equal("ConfigError");
      expect(run.error?.message).to.contain("edms-staging_backups, edms-staging_postgres_data");
      expect(run.error?.message).to.contain("edms:namePrefix edms-staging --stack staging");
      expect(run.resources, "no resource is registered").to.deep.equal([]);
    });

    it("deploys when the volumes carry the configured prefix; warns, and deploys, when the host cannot be asked", async function () {
      const same = await runProgram({
        stack: "staging",
        hostVolumes: [{ name: "edms-staging_backups", role: "backups" }],
      });
      expect(same.error, String(same.error)).to.equal(undefined);
      expect(same.warnings.filter((w) => w.includes("namePrefix"))).to.deep.equal([]);
      const unasked = await runProgram({
        stack: "staging",
        hostVolumes: { failed: "spawnSync docker ENOENT" },
      });
      expect(unasked.error, String(unasked.error)).to.equal(undefined);
      expect(unasked.warnings.join("\n")).to.contain(
        "(spawnSync docker ENOENT), so a changed `edms:namePrefix` is not checked",
      );
    });
  });
});
