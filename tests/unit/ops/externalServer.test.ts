import { expect } from "chai";
import { pgCommand } from "../../../ops/database/postgres";
import { missingRestoreRights, Rights } from "../../../ops/database/rights";
import { ExternalServer } from "../../../ops/database/server";

const server: ExternalServer = {
  kind: "external",
  host: "db.example.internal",
  port: 6432,
  database: "edms",
  user: "edms_admin",
  sslMode: "verify-full",
  clientImage: "postgres:16",
  network: "edms_egress",
  credentialsVolume: "edms_db_credentials",
};

describe("an external database server: the client container and the rights a restore needs", function () {
  it("runs the tool in a client container of the server's major, credentials only as read-only files, TLS by libpq variables", function () {
    const command = pgCommand(server, "pg_dump", ["-d", "edms", "-Fc"], {
      PGAPPNAME: "edms-backup-dump",
    });
    expect(command.command).to.equal("docker");
    expect(command.env).to.deep.equal({});
    const args = command.args;
    expect(args.slice(0, 4)).to.deep.equal(["run", "-i", "--rm", "--log-driver"]);
    expect(args).to.include.members([
      "--read-only",
      "--network",
      "edms_egress",
      "--entrypoint",
      "pg_dump",
    ]);
    expect(args).to.not.include("--cap-add");
    expect(args.join(" ")).to.include("-v edms_db_credentials:/run/edms-db:ro");
    const env = args.flatMap((arg, at) => (args[at - 1] === "-e" ? [arg] : []));
    expect(env).to.include.members([
      "PGPASSFILE=/run/edms-db/pgpass",
      "PGSSLMODE=verify-full",
      "PGSSLROOTCERT=/run/edms-db/ca.crt",
      "PGCONNECT_TIMEOUT=10",
      "PGAPPNAME=edms-backup-dump",
    ]);
    expect(env.some((e) => e.startsWith("PGPASSWORD"))).to.equal(false);
    expect(args.slice(args.indexOf("postgres:16"))).to.deep.equal([
      "postgres:16",
      ...["-h", "db.example.internal", "-p", "6432", "-U", "edms_admin", "-d", "edms", "-Fc"],
    ]);
  });

  it("names no CA file when the mode verifies nothing", function () {
    const args = pgCommand({ ...server, sslMode: "require" }, "psql", []).args;
    expect(args).to.include("PGSSLMODE=require");
    expect(args.some((a) => a.startsWith("PGSSLROOTCERT"))).to.equal(false);
  });

  const rights = (over: Partial<Rights>): Rights => ({
    role: "edms_admin",
    superuser: false,
    createdb: true,
    owner: true,
    signal: true,
    maintenance: true,
    ...over,
  });

  it("lacks nothing as a superuser or with every right; names each missing one with its grant", function () {
    expect(missingRestoreRights(rights({}), "edms")).to.deep.equal([]);
    const none = { createdb: false, owner: false, signal: false, maintenance: false };
    expect(missingRestoreRights(rights({ ...none, superuser: true }), "edms")).to.deep.equal([]);
    const missing = missingRestoreRights(rights({ ...none, role: 'odd"role' }), "my db");
    expect(missing).to.have.length(4);
    expect(missing[0]).to.include('ALTER ROLE "odd""role" CREATEDB;');
    expect(missing[1]).to.include('ALTER DATABASE "my db" OWNER TO "odd""role";');
    expect(missing[2]).to.include('GRANT pg_signal_backend TO "odd""role";');
    expect(missing[3]).to.include('GRANT CONNECT ON DATABASE postgres TO "odd""role";');
    expect(missingRestoreRights(rights({ owner: null }), "gone")).to.deep.equal([
      'database gone, which does not exist (CREATE DATABASE "gone" OWNER "edms_admin";)',
    ]);
  });
});
