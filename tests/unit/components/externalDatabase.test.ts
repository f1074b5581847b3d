/**
 * Issue 22, `edms:database`: an external PostgreSQL instead of the stack's container. What validation refuses,
 * and what the program declares (against a real server: tests/e2e/externalStack.test.ts).
 */
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runProgram } from "../../harness/mocks";
import { settingsProblems } from "../../harness/settingsProblems";
import { validateSettings } from "../../../model/settings";
import { DATABASE_CA_FILE } from "../../../model/containers";

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const NETWORK = "docker:index/network:Network";
const PASSWORD = "Ext-Db-Pw-9f3e";
const CA = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";

const roleOf = (inputs: Record<string, any>): string =>
  (inputs.labels as { label: string; value: string }[]).find((l) => l.label === "edms.role")!.value;

const problems = settingsProblems;

describe("edms:database validation", function () {
  const database = {
    host: "db.example.com",
    user: "edms_admin",
    password: { secure: "v1:abc" },
    caCertificateFile: "certs/db-ca.pem",
  };

  it("accepts a server with verify-full (the default) and keeps the password out of Settings", function () {
    const settings = validateSettings("staging", {
      environment: "staging",
      version: "1",
      database,
    });
    expect(settings.database).to.deep.equal({
      host: "db.example.com",
      port: 5432,
      name: "edms",
      user: "edms_admin",
      sslMode: "verify-full",
      caCertificateFile: "certs/db-ca.pem",
    });
    expect(JSON.stringify(settings)).not.to.contain("v1:abc");
  });

  it("refuses a password in plain text, naming the --secret command", function () {
    const found = problems({ database: { ...database, password: "hunter2" } });
    expect(found.join("\n")).to.match(/database\.password is in plain text.*--secret/);
    expect(found.join("\n")).not.to.contain("hunter2");
  });

  it("refuses verify-full without a CA file, hostile hosts, roles and networks", function () {
    const noCa = { ...database, caCertificateFile: undefined };
    expect(problems({ database: noCa }).join("\n")).to.match(/needs database\.caCertificateFile/);
    for (const host of ["db.example.com; rm -rf /", "-h evil", "host=evil", ""]) {
      expect(problems({ database: { ...database, host } }), host).to.have.length(1);
    }
    for (const user of ["edms admin", "-U", "x'y", "a".repeat(64)]) {
      expect(problems({ database: { ...database, user } }), user).to.have.length(1);
    }
    for (const network of ["--net=host", "host", "none"]) {
      expect(problems({ database: { ...database, network } }), network).to.have.length(1);
    }
    expect(problems({ database: { ...database, host: "[::1]" } })).to.have.length(1);
    expect(problems({ database: { ...database, host: "fd00::5" } })).to.deep.equal([]);
    expect(problems({ database: { ...database, host: undefined } }).join()).to.contain(
      "database.host",
    );
    expect(problems({ database: { ...database, unknown: "x" } })).to.have.length(1);
  });

  it("names the stack's database (default edms): a plain identifier with room for the restore's suffixes, never the server's own", function () {
    const named = validateSettings("staging", {
      environment: "staging",
      version: "1",
      database: { ...database, name: "records_2026" },
    });
    expect(named.database?.name).to.equal("records_2026");
    for (const name of [
      "Records",
      "x;drop",
      "a-b",
      "1abc",
      "",
      "a".repeat(42),
      "postgres",
      "template1",
    ]) {
      const found = problems({ database: { ...database, name } }).join("\n");
      expect(found, name).to.match(/database\.name/);
    }
  });

  it("refuses dataGeneration (nothing starts it afresh); a schedule and a pre-deploy drill are fine", function () {
    expect(problems({ database })).to.deep.equal([]);
    expect(
      problems({
        database,
        backup: { schedule: "off", beforeDeploy: true, drillBeforeDeploy: true },
      }),
    ).to.deep.equal([]);
    expect(problems({ database, dataGeneration: 1 }).join("\n")).to.match(
      /cannot start an external database afresh/,
    );
  });

  it("production: only with verify-full", function () {
    const found = problems({ database: { ...database, sslMode: "require" } }, "production");
    expect(found.join("\n")).to.match(/sslMode: require` is not allowed on production/);
    expect(problems({ database }, "production").join("\n")).not.to.match(/database/);
  });
});

describe("the program with an external database", function () {
  let dir: string;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-extdb-"));
    fs.writeFileSync(path.join(dir, "ca.pem"), CA);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (database: Record<string, unknown>) =>
    runProgram({
      stack: "staging",
      overrides: {
        "edms:backup": { schedule: "off" },
        "edms:database": {
          host: "db.example.com",
          port: 6432,
          user: "edms_admin",
          password: { secure: PASSWORD },
          caCertificateFile: path.join(dir, "ca.pem"),
          ...database,
        },
      },
    });

  it("declares no postgres container or volume; a credentials volume and a database network instead", async function () {
    const result = await run({});
    expect(result.error).to.equal(undefined);
    const containers = result.ofType(CONTAINER).map((c) => roleOf(c.inputs));
    expect(containers).not.to.include("postgres");
    const volumes = result.ofType(VOLUME).map((v) => v.inputs.name);
    expect(volumes).to.include("edms-staging_db_credentials");
    expect(volumes.filter((v: string) => v.includes("postgres"))).to.deep.equal([]);
    const networks = result.ofType(NETWORK);
    const db = networks.find((n) => n.inputs.name === "edms-staging-database");
    expect(db?.inputs.internal).to.not.equal(true);
  });

  it("web and worker reach it by host, port and verify-full with the CA as a file; the admin's password is nowhere in them", async function () {
    const result = await run({});
    const services = result
      .ofType(CONTAINER)
      .filter((c) => ["web", "worker"].includes(roleOf(c.inputs)));
    expect(services).to.have.length(2);
    for (const c of services) {
      expect(c.inputs.envs).to.include.members([
        "POSTGRES_HOST=db.example.com",
        "PGPORT=6432",
        "PGSSLMODE=verify-full",
        `PGSSLROOTCERT=${DATABASE_CA_FILE}`,
        "POSTGRES_DB=edms",
      ]);
      const ca = c.inputs.uploads.find((u: { file: string }) => u.file === DATABASE_CA_FILE);
      expect(ca.content).to.equal(CA);
      const nets = c.inputs.networksAdvanced.map((n: { name: string }) => n.name);
      expect(nets).to.include("edms-staging-database");
      expect(JSON.stringify(c.inputs)).not.to.contain(PASSWORD);
    }
  });

  it("hands the password to backupInit, migrate and bootstrap only, as a secret; a given network is used as is", async function () {
    const result = await run({ network: "tunnel-net" });
    const init = result.byName("backupInit");
    expect(init.inputs.environment.EDMS_DATABASE_PASSWORD).to.equal(PASSWORD);
    expect(init.inputs.environment.EDMS_DATABASE_CA).to.equal(CA);
    expect(init.secretInputs).to.include("environment.EDMS_DATABASE_PASSWORD");
    for (const hook of ["migrate", "bootstrap"]) {
      expect(result.byName(hook).inputs.environment.EDMS_POSTGRES_PASSWORD, hook).to.equal(
        PASSWORD,
      );
      expect(result.byName(hook).secretInputs).to.include("environment.EDMS_POSTGRES_PASSWORD");
    }
    for (const resource of result.resources) {
      const plain = JSON.stringify(resource.inputs.environment?.EDMS_SETTINGS_JSON ?? "");
      expect(plain, resource.name).not.to.contain(PASSWORD);
    }
    expect(result.ofType(NETWORK).map((n) => n.inputs.name)).not.to.include(
      "edms-staging-database",
    );
    const web = result.ofType(CONTAINER).find((c) => roleOf(c.inputs) === "web")!;
    expect(web.inputs.networksAdvanced.map((n: { name: string }) => n.name)).to.include(
      "tunnel-net",
    );
  });

  it("refuses a password with a line break (no pgpass file holds it), naming the key", async function () {
    const result = await run({ password: { secure: "line1\nline2" } });
    expect(result.error?.message).to.match(/edms:database\.password` is a value with a line break/);
    expect(result.error?.message).not.to.contain("line1");
  });

  it("refuses a CA file that is missing or holds no certificate, before creating anything", async function () {
    fs.writeFileSync(path.join(dir, "key.pem"), "-----BEGIN PRIVATE KEY-----\n");
    for (const file of [path.join(dir, "absent.pem"), path.join(dir, "key.pem")]) {
      const result = await run({ caCertificateFile: file });
      expect(result.error?.message, file).to.match(/edms:database\.caCertificateFile/);
      expect(result.resources.filter((r) => r.type !== "pulumi:providers:docker")).to.have.length(
        0,
      );
    }
  });
});
