import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { dockerVolumes } from "../../../components/hostVolumes";
import { movedPrefixProblem } from "../../../model/config/names";
import { validateSettings } from "../../../model/config/validate";
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
        { name: "shop-new_redis_data", role: "redis" },
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
          { name: "shop_backups", role: "backups" },
          { name: "shop-new_backups", role: "backups" },
          { name: "shop-new_media_files", role: "media" },
        ]);
        expect(problem, configured).to.contain("Nothing was changed");
        expect(problem, configured).to.contain("remove them by hand");
        expect(problem, configured).not.to.contain("pulumi config set");
      }
      expect(
        movedPrefixProblem("stg", "shop", [
          { name: "shop_backups", role: "backups" },
          { name: "shop-new_backups", role: "backups" },
        ]),
      ).to.contain(
        "under `edms:namePrefix` `shop` (shop_backups) and also named otherwise (shop-new_backups)",
      );
    });

    it("a role that is a key every object has is no data role", function () {
      for (const role of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
        expect(movedPrefixProblem("stg", "shop", [{ name: "x_backups", role }]), role).to.equal(
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

    it("deploys when the volumes carry the configured prefix", async function () {
      const same = await runProgram({
        stack: "staging",
        hostVolumes: [{ name: "edms-staging_backups", role: "backups" }],
      });
      expect(same.error, String(same.error)).to.equal(undefined);
      expect(same.warnings.filter((w) => w.includes("namePrefix"))).to.deep.equal([]);
    });

    it("a host it cannot ask: `pulumi up` refuses before declaring anything, a preview warns", async function () {
      const failed = { failed: "spawnSync docker ENOENT" };
      const up = await runProgram({ stack: "staging", hostVolumes: failed });
      expect(up.error?.message).to.contain(
        "(spawnSync docker ENOENT), so a changed `edms:namePrefix` cannot be checked before the deploy. Nothing was changed.",
      );
      expect(up.resources).to.deep.equal([]);
      const preview = await runProgram({ stack: "staging", hostVolumes: failed, preview: true });
      expect(preview.error, String(preview.error)).to.equal(undefined);
      expect(preview.warnings.join("\n")).to.contain(
        "(spawnSync docker ENOENT), so this preview does not check a changed `edms:namePrefix`",
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

    it("lists the stack's volumes by label on docker:host, without the program's decrypted config", function () {
      fakeDocker(`printf 'shop_backups backups\\nshop_redis_data redis\\nodd\\n'`);
      process.env.PULUMI_CONFIG = '{"edms:superuserPassword":"s3cret"}';
      expect(dockerVolumes(settings("ssh://deploy@host.internal"))).to.deep.equal([
        { name: "shop_backups", role: "backups" },
        { name: "shop_redis_data", role: "redis" },
        { name: "odd", role: "" },
      ]);
      expect(fs.readFileSync(path.join(dir, "argv"), "utf8").split("\n")).to.deep.equal([
        "volume",
        "ls",
        "--filter",
        "label=edms.stack=stg",
        "--format",
        '{{.Name}} {{.Label "edms.role"}}',
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
