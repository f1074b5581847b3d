import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { dockerVolumes } from "../../../components/hostVolumes";
import {
  hostVolumeProblems,
  LabelledVolume,
  movedPrefixProblem,
  resourceNames,
} from "../../../model/config/names";
import { validateSettings } from "../../../model/config/validate";
import { runProgram } from "../../harness/mocks";

const vol = (
  name: string,
  role: string,
  stack = "stg",
  environment = "staging",
): LabelledVolume => ({
  name,
  role,
  stack,
  environment,
});

describe("a stack whose data is on the host under another edms:namePrefix", function () {
  describe("movedPrefixProblem", function () {
    it("none when every data volume of the stack carries the prefix, at any data generation", function () {
      const volumes = [
        vol("shop_backups", "backups"),
        vol("shop_postgres_data", "postgres"),
        vol("shop_postgres_data_g3", "postgres"),
        vol("shop_media_files_g3", "media"),
        // Not data: a cache and credentials volumes named otherwise change nothing.
        vol("other_redis_data", "redis"),
        vol("other_db_credentials", "database-credentials"),
      ];
      expect(movedPrefixProblem("stg", "shop", volumes)).to.equal(undefined);
      expect(movedPrefixProblem("stg", "shop", [])).to.equal(undefined);
    });

    it("names the volumes, says nothing was changed and how to set the prefix back", function () {
      const problem = movedPrefixProblem("stg", "shop-new", [
        vol("shop_postgres_data", "postgres"),
        vol("shop_backups", "backups"),
        vol("shop-new_redis_data", "redis"),
      ]);
      expect(problem).to.contain("`edms:namePrefix` is `shop-new`");
      expect(problem).to.contain("in shop_backups, shop_postgres_data.");
      expect(problem).to.contain("Nothing was changed");
      expect(problem).to.contain("`pulumi config set edms:namePrefix shop --stack stg`");
      expect(problem).to.contain("Renaming a stack's prefix");
    });

    it("data volumes under the configured prefix and another: both named, no one-line fix offered", function () {
      for (const configured of ["shop", "shop-new"]) {
        const problem = movedPrefixProblem("stg", configured, [
          vol("shop_backups", "backups"),
          vol("shop-new_backups", "backups"),
          vol("shop-new_media_files", "media"),
        ]);
        expect(problem, configured).to.contain("Nothing was changed");
        expect(problem, configured).to.contain("remove them by hand");
        expect(problem, configured).not.to.contain("pulumi config set");
      }
      expect(
        movedPrefixProblem("stg", "shop", [
          vol("shop_backups", "backups"),
          vol("shop-new_backups", "backups"),
        ]),
      ).to.contain(
        "under `edms:namePrefix` `shop` (shop_backups) and also named otherwise (shop-new_backups)",
      );
    });

    it("reads the prefix back from every data volume name resourceNames makes, at any generation", function () {
      for (const generation of [0, 1, 12]) {
        const made = resourceNames("shop-2", generation);
        for (const [name, role] of [
          [made.postgresVolume, "postgres"],
          [made.mediaVolume, "media"],
          [made.backupsVolume, "backups"],
        ]) {
          expect(movedPrefixProblem("stg", "shop-2", [vol(name, role)]), name).to.equal(undefined);
          expect(movedPrefixProblem("stg", "other", [vol(name, role)]), name).to.contain(
            "`pulumi config set edms:namePrefix shop-2 --stack stg`",
          );
        }
      }
    });

    it("a role that is a key every object has is no data role", function () {
      for (const role of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
        expect(movedPrefixProblem("stg", "shop", [vol("x_backups", role)]), role).to.equal(
          undefined,
        );
      }
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
        expect(movedPrefixProblem("stg", configured, [vol(found, role)]), found).to.contain(found);
      }
    });

    it("volumes of two other prefixes, or a data volume named unlike the program's, get no single prefix to go back to", function () {
      for (const volumes of [
        [vol("a_backups", "backups"), vol("b_postgres_data", "postgres")],
        [vol("handmade", "backups")],
        [vol("shop_backups_old", "backups")],
      ]) {
        const problem = movedPrefixProblem("stg", "shop", volumes);
        expect(problem, volumes[0].name).to.contain(
          "set `edms:namePrefix` back to the prefix of those volumes",
        );
      }
    });
  });

  describe("hostVolumeProblems", function () {
    it("none on a host holding only the stack's volumes and other stacks' of other prefixes", function () {
      const volumes = [
        vol("shop_backups", "backups"),
        vol("shop_postgres_data_g1", "postgres"),
        vol("shop-prod_backups", "backups", "prod", "production"),
        vol("shop-prod_postgres_data", "postgres", "prod", "production"),
      ];
      expect(
        hostVolumeProblems(
          { stack: "stg", environment: "staging", namePrefix: "shop" },
          [],
          volumes,
        ),
      ).to.deep.equal([]);
    });

    it("a prefix naming another stack's data volumes (two stacks, one prefix; a renamed stack)", function () {
      const problems = hostVolumeProblems(
        { stack: "stg", environment: "staging", namePrefix: "shop" },
        [],
        [
          vol("shop_backups", "backups", "staging-old"),
          vol("shop_media_files_g2", "media", "staging-old"),
          vol("shop_redis_data", "redis", "staging-old"),
        ],
      );
      expect(problems).to.have.length(1);
      expect(problems[0]).to.contain(
        "`edms:namePrefix` `shop` names volumes of stack `staging-old` on this Docker host (shop_backups, shop_media_files_g2)",
      );
      expect(problems[0]).to.contain("Nothing was changed");
      expect(problems[0]).to.contain("after `pulumi stack rename`, rename it back");
    });

    it("the stack's data volumes labelled with another environment", function () {
      const problems = hostVolumeProblems(
        { stack: "qa", environment: "staging", namePrefix: "shop" },
        [],
        [
          vol("shop_backups", "backups", "qa", "dev"),
          vol("shop_postgres_data", "postgres", "qa", "dev"),
          vol("shop_redis_data", "redis", "qa", "dev"),
        ],
      );
      expect(problems).to.deep.equal([
        "Stack `qa`'s volumes shop_backups, shop_postgres_data are labelled environment `dev`, and it is configured as `staging`. A volume's labels cannot change in place: the deploy would replace them, and deleting the replaced ones deletes the data under the same names. Nothing was changed. Set it back with `pulumi config set edms:environment dev --stack qa`.",
      ]);
    });

    it("an environment label of two values, or none, gets no command to set it back", function () {
      const problems = hostVolumeProblems(
        { stack: "qa", environment: "staging", namePrefix: "shop" },
        [],
        [
          vol("shop_backups", "backups", "qa", "dev"),
          vol("shop_postgres_data", "postgres", "qa", ""),
        ],
      );
      expect(problems).to.have.length(1);
      expect(problems[0]).to.contain(
        "are labelled environment `dev`, (none), and it is configured as `staging`",
      );
      expect(problems[0]).not.to.contain("pulumi config set");
    });

    it("a volume under one of the names the program declares but without the stack's labels", function () {
      const declared = ["shop_postgres_data", "shop_media_files", "shop_backups"];
      const problems = hostVolumeProblems(
        { stack: "stg", environment: "staging", namePrefix: "shop" },
        declared,
        [
          vol("shop_backups", "", "", ""),
          // Not one the program declares at this generation, and not labelled: no concern of this stack.
          vol("shop_postgres_data_g1", "", "", ""),
          vol("unrelated", "", "", ""),
          vol("shop_media_files", "media"),
        ],
      );
      expect(problems).to.deep.equal([
        "Volume shop_backups exists on this Docker host without the labels stack `stg` gives its volumes (`edms.stack`, `edms.environment`, `edms.data`, `edms.role`). Docker cannot add labels to a volume: once deployed, the next `pulumi up` would replace it, deleting the data. Nothing was changed. Copy the data into a volume created with those labels under that name, or remove the volume if it holds nothing of the stack's.",
      ]);
    });

    it("the stack's own volumes under another prefix, through movedPrefixProblem", function () {
      const problems = hostVolumeProblems(
        { stack: "stg", environment: "staging", namePrefix: "shop-new" },
        [],
        [vol("shop_backups", "backups"), vol("shop_backups", "backups", "other")],
      );
      expect(problems).to.have.length(1);
      expect(problems[0]).to.contain(
        "`edms:namePrefix` is `shop-new`, but stack `stg` keeps its data",
      );
      expect(problems[0]).to.contain("in shop_backups.");
    });
  });

  describe("the program", function () {
    it("stops before declaring anything when the stack's backups are on the host under the old prefix", async function () {
      const run = await runProgram({
        stack: "staging",
        overrides: { "edms:namePrefix": "renamed" },
        hostVolumes: [
          vol("edms-staging_backups", "backups", "staging"),
          vol("edms-staging_postgres_data", "postgres", "staging"),
        ],
      });
      expect(run.error?.name).to.equal("ConfigError");
      expect(run.error?.message).to.contain("edms-staging_backups, edms-staging_postgres_data");
      expect(run.error?.message).to.contain("edms:namePrefix edms-staging --stack staging");
      expect(run.resources, "no resource is registered").to.deep.equal([]);
    });

    it("deploys when the volumes carry the configured prefix", async function () {
      const same = await runProgram({
        stack: "staging",
        hostVolumes: [vol("edms-staging_backups", "backups", "staging")],
      });
      expect(same.error, String(same.error)).to.equal(undefined);
      expect(same.warnings.filter((w) => w.includes("namePrefix"))).to.deep.equal([]);
    });

    it("a host it cannot ask: `pulumi up` refuses before declaring anything, a preview warns", async function () {
      const failed = { failed: "spawnSync docker ENOENT" };
      const up = await runProgram({ stack: "staging", hostVolumes: failed });
      expect(up.error?.message).to.contain(
        "(spawnSync docker ENOENT), so the stack's volumes (their prefix, their stack and environment labels) cannot be checked before the deploy. Nothing was changed.",
      );
      expect(up.resources).to.deep.equal([]);
      const preview = await runProgram({ stack: "staging", hostVolumes: failed, preview: true });
      expect(preview.error, String(preview.error)).to.equal(undefined);
      expect(preview.warnings.join("\n")).to.contain(
        "(spawnSync docker ENOENT), so this preview does not check the stack's volumes",
      );
    });
  });

  describe("the docker CLI it asks", function () {
    let dir: string;
    const saved = { PATH: process.env.PATH, PULUMI_CONFIG: process.env.PULUMI_CONFIG };
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-docker-cli-"))));
    afterEach(() => {
      process.env.PATH = saved.PATH;
      if (saved.PULUMI_CONFIG === undefined) {
        delete process.env.PULUMI_CONFIG;
      } else {
        process.env.PULUMI_CONFIG = saved.PULUMI_CONFIG;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** A `docker` first on PATH: records its argv and environment, answers with `script`. */
    function fakeDocker(script: string): void {
      fs.writeFileSync(
        path.join(dir, "docker"),
        `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/argv"\nenv > "${dir}/env"\n${script}\n`,
        { mode: 0o755 },
      );
      process.env.PATH = `${dir}:${saved.PATH}`;
    }
    const settings = (dockerHost?: string) =>
      validateSettings(
        "stg",
        { environment: "staging", version: "1.0.0", namePrefix: "shop" },
        dockerHost,
      );

    it("lists every stack's volumes by label on docker:host, without the program's decrypted config", function () {
      fakeDocker(
        `printf 'shop_backups\\tbackups\\tstg\\tstaging\\nother_redis_data\\tredis\\tother\\tdev\\todd\\nbare\\n'`,
      );
      process.env.PULUMI_CONFIG = '{"edms:superuserPassword":"s3cret"}';
      expect(dockerVolumes(settings("ssh://deploy@host.internal"))).to.deep.equal([
        vol("shop_backups", "backups"),
        vol("other_redis_data", "redis", "other", "dev\todd"),
        vol("bare", "", "", ""),
      ]);
      expect(fs.readFileSync(path.join(dir, "argv"), "utf8").split("\n")).to.deep.equal([
        "volume",
        "ls",
        "--format",
        '{{.Name}}\t{{.Label "edms.role"}}\t{{.Label "edms.stack"}}\t{{.Label "edms.environment"}}',
        "",
      ]);
      const env = fs.readFileSync(path.join(dir, "env"), "utf8");
      expect(env).to.contain("DOCKER_HOST=ssh://deploy@host.internal");
      expect(env).not.to.contain("s3cret");
      expect(env).not.to.match(/^PULUMI_/m);
    });

    it("a failing CLI: its first line of stderr, or its exit code", function () {
      fakeDocker(`echo 'Cannot connect to the Docker daemon' >&2; echo more >&2; exit 1`);
      expect(dockerVolumes(settings())).to.deep.equal({
        failed: "Cannot connect to the Docker daemon",
      });
      fakeDocker("exit 3");
      expect(dockerVolumes(settings())).to.deep.equal({ failed: "docker exited with 3" });
    });
  });
});
