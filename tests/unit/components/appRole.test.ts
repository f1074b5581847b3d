/**
 * Issue 20, least privilege in the database: web and worker connect as the application role, which is not a
 * superuser; only migrate (and edms-ops) hold the superuser's password. (Against a real server:
 * tests/e2e/deploy.test.ts 5b.)
 */
import { expect } from "chai";
import { createHash, createHmac, pbkdf2Sync } from "crypto";
import { useStackRuns } from "../../harness/mocks";
import { APP_DB_PASSWORD_FILE, APP_DB_USER, SECRETS_DIR } from "../../../model/containers";
import { appRightsSql, appRoleSql, scramVerifier } from "../../../ops/database/appRole";

const CONTAINER = "docker:index/container:Container";
const APP_SECRET = /mock-secret-edms-secrets-app-db-password/;
const SUPERUSER_SECRET = /mock-secret-edms-secrets-postgres-password/;

const roleOf = (inputs: Record<string, any>): string =>
  (inputs.labels as { label: string; value: string }[]).find((l) => l.label === "edms.role")!.value;

describe("application database role (issue 20): web and worker are not the superuser", function () {
  const runs = useStackRuns();

  for (const stack of ["dev", "production"]) {
    it(`${stack}: web and worker log in as ${APP_DB_USER} with its own password file; the superuser's is nowhere in them`, function () {
      const run = runs[stack];
      const services = run
        .ofType(CONTAINER)
        .filter((c) => ["web", "worker"].includes(roleOf(c.inputs)));
      expect(services.map((c) => roleOf(c.inputs)).sort()).to.deep.equal(["web", "worker"]);
      for (const c of services) {
        expect(c.inputs.envs, c.name).to.include.members([
          `POSTGRES_USER=${APP_DB_USER}`,
          `POSTGRES_PASSWORD_FILE=${APP_DB_PASSWORD_FILE}`,
        ]);
        const files = c.inputs.uploads.map((u: { file: string }) => u.file);
        expect(files, c.name).to.include(APP_DB_PASSWORD_FILE);
        expect(files, c.name).not.to.include(`${SECRETS_DIR}/postgres_password`);
        const upload = c.inputs.uploads.find(
          (u: { file: string }) => u.file === APP_DB_PASSWORD_FILE,
        );
        expect(upload.content).to.match(APP_SECRET);
        expect(JSON.stringify(c.inputs)).not.to.match(SUPERUSER_SECRET);
      }
    });
  }

  it("the migrate hook gets the role's password as a secret and runs again when it changes", function () {
    const migrate = runs.production.byName("migrate");
    expect(migrate.inputs.environment.EDMS_APP_DB_PASSWORD).to.match(APP_SECRET);
    expect(migrate.secretInputs).to.include("environment.EDMS_APP_DB_PASSWORD");
    expect(JSON.stringify(migrate.inputs.triggers)).to.match(APP_SECRET);
    // bootstrap and the backup hooks have no use for it.
    for (const hook of ["bootstrap", "backupInit", "preDeployBackup"]) {
      expect(runs.production.byName(hook).inputs.environment, hook).not.to.have.property(
        "EDMS_APP_DB_PASSWORD",
      );
    }
  });
});

describe("application role SQL", function () {
  it("sends a SCRAM-SHA-256 verifier that a server accepts for the password, never the password", function () {
    const salt = Buffer.from("0123456789abcdef");
    const verifier = scramVerifier("s3cret", salt);
    const match = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(verifier);
    expect(match, verifier).to.not.equal(null);
    expect(Buffer.from(match![1], "base64")).to.deep.equal(salt);
    // RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key").
    const salted = pbkdf2Sync("s3cret", salt, 4096, 32, "sha256");
    const clientKey = createHmac("sha256", salted).update("Client Key").digest();
    expect(match![2]).to.equal(createHash("sha256").update(clientKey).digest("base64"));
    expect(match![3]).to.equal(createHmac("sha256", salted).update("Server Key").digest("base64"));
    expect(scramVerifier("s3cret")).not.to.equal(scramVerifier("s3cret"));
    const sql = appRoleSql("s3cret");
    expect(sql).not.to.contain("s3cret");
    expect(sql).to.match(/NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD/);
  });

  it("grants rows of the owner's objects in public only, CONNECT by name, and nothing where the role does not exist yet", function () {
    const sql = appRightsSql("edms_restore");
    expect(sql).to.match(/\\if :has_role/);
    expect(sql).to.contain(`GRANT CONNECT ON DATABASE "edms_restore" TO "${APP_DB_USER}"`);
    // Per object the connecting role (the superuser, or an external server's admin) owns, never ON ALL
    // TABLES: another role's table keeps its owner's grants.
    expect(sql).to.contain(
      "c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) \\gexec",
    );
    expect(sql).to.contain("ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public");
    expect(sql).not.to.match(/ON ALL TABLES|GRANT ALL|TRUNCATE|GRANT CREATE|SUPERUSER/);
    expect(sql).to.contain("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
  });
});
