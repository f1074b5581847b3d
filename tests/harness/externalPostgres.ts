/**
 * An external PostgreSQL for the tests, as a managed one looks from edms-ops: a real server in a container
 * outside any stack, on a network of its own, reached by name (`db.external.test`) over TLS only (`hostssl`,
 * a certificate from a CA of the test's own), and a role that is not a superuser: `edms_admin` (CREATEDB,
 * CREATEROLE, pg_signal_backend, owner of database `edms`, as a managed database's admin user is). A second
 * role, `edms_limited`, has none of those rights. Per test process (files run side by side).
 */
import { ExternalServer } from "../../ops/database/server";
import { docker, RunResult } from "../../ops/engine/docker";
import { dockerRunArgs } from "../../ops/engine/dockerRun";
import { S3_HOST } from "./s3Server";

const TAG = process.env.EDMS_TEST_PORT_BASE ?? "serial";
export const EXTERNAL_ROLE = "test-external-db";
/** Every container, volume and network of it is named so; a leftover of a killed run is found by it. */
export const EXTERNAL_PREFIX = "e2e-extpg-";
const SERVER = `${EXTERNAL_PREFIX}${TAG}`;
export const EXTERNAL_NETWORK = `${EXTERNAL_PREFIX}net-${TAG}`;
export const EXTERNAL_HOST = "db.external.test";
const IMAGE = "edms-test/postgres:15";
const DATA = `${EXTERNAL_PREFIX}data-${TAG}`;
const TLS = `${EXTERNAL_PREFIX}tls-${TAG}`;
/** Credentials volumes as edms-ops would be given them: the admin's, the limited role's, one with a foreign CA. */
const CREDENTIALS = {
  admin: `${EXTERNAL_PREFIX}cred-admin-${TAG}`,
  limited: `${EXTERNAL_PREFIX}cred-limited-${TAG}`,
  foreignCa: `${EXTERNAL_PREFIX}cred-foreign-${TAG}`,
} as const;
export type Credentials = keyof typeof CREDENTIALS;
const VOLUMES = [DATA, TLS, ...Object.values(CREDENTIALS)];
/** Test-only passwords; handed to the setup container on stdin, never in its argv or env. */
export const ADMIN_PASSWORD = "admin-pw-3c9e1a7f";
const LIMITED_PASSWORD = "limited-pw-8d2b6e40";

/** The CA, the server's certificate (for db.external.test only) and a foreign CA; the data directory, its roles. */
const SETUP = String.raw`
read -r admin_pw; read -r limited_pw
cd /tls
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=edms test CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=${EXTERNAL_HOST}" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:${EXTERNAL_HOST}\n' >san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=foreign CA" -keyout foreign.key -out foreign.crt 2>/dev/null
# The S3 server's (tests/harness/s3Server.ts), from the same CA: a test key, readable by radosgw.
openssl req -newkey rsa:2048 -nodes -subj "/CN=${S3_HOST}" -keyout s3.key -out s3.csr 2>/dev/null
printf 'subjectAltName=DNS:${S3_HOST}\n' >s3san.ext
openssl x509 -req -in s3.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile s3san.ext -out s3.crt 2>/dev/null
chmod 644 s3.key
rm -f ca.key foreign.key server.csr s3.csr
printf 'local all all trust\nhostssl all all all scram-sha-256\n' >pg_hba.conf
chown postgres:postgres server.key pg_hba.conf && chmod 600 server.key
for role in admin limited foreign; do
  case $role in admin) user=edms_admin pw=$admin_pw ca=ca.crt ;; limited) user=edms_limited pw=$limited_pw ca=ca.crt ;;
    foreign) user=edms_admin pw=$admin_pw ca=foreign.crt ;; esac
  cp "$ca" /cred/$role/ca.crt
  printf '*:*:*:%s:%s\n' "$user" "$pw" >/cred/$role/pgpass
  chmod 600 /cred/$role/pgpass
done
chown postgres:postgres /var/lib/postgresql/data
gosu postgres initdb -D /var/lib/postgresql/data -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust >/dev/null
cat >>/var/lib/postgresql/data/postgresql.conf <<EOF
ssl = on
ssl_cert_file = '/tls/server.crt'
ssl_key_file = '/tls/server.key'
hba_file = '/tls/pg_hba.conf'
password_encryption = 'scram-sha-256'
EOF
gosu postgres pg_ctl -D /var/lib/postgresql/data -o "-c listen_addresses=''" -w start >/dev/null
gosu postgres psql -v ON_ERROR_STOP=1 -qX -U postgres -d postgres \
  -v admin_pw="$admin_pw" -v limited_pw="$limited_pw" <<'EOF'
CREATE ROLE edms_admin LOGIN CREATEDB CREATEROLE PASSWORD :'admin_pw';
GRANT pg_signal_backend TO edms_admin;
CREATE DATABASE edms OWNER edms_admin;
CREATE ROLE edms_limited LOGIN PASSWORD :'limited_pw';
EOF
gosu postgres pg_ctl -D /var/lib/postgresql/data -m fast -w stop >/dev/null
`;

export async function startExternalPostgres(): Promise<void> {
  await stopExternalPostgres();
  await docker(["network", "create", "--label", `edms.role=${EXTERNAL_ROLE}`, EXTERNAL_NETWORK]);
  await docker(
    dockerRunArgs({
      image: IMAGE,
      entrypoint: "sh",
      args: ["-euc", SETUP],
      remove: true,
      stdin: true,
      user: "0",
      network: "none",
      confinement: {
        capabilities: ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"],
        tmpfs: [],
        readOnly: false,
      },
      mounts: [
        { volume: DATA, path: "/var/lib/postgresql/data" },
        { volume: TLS, path: "/tls" },
        ...Object.entries(CREDENTIALS).map(([role, volume]) => ({
          volume,
          path: `/cred/${role === "foreignCa" ? "foreign" : role}`,
        })),
      ],
    }),
    { input: `${ADMIN_PASSWORD}\n${LIMITED_PASSWORD}\n` },
  );
  await docker([
    "run",
    "-d",
    "--name",
    SERVER,
    "--label",
    `edms.role=${EXTERNAL_ROLE}`,
    "--network",
    EXTERNAL_NETWORK,
    "--network-alias",
    EXTERNAL_HOST,
    ...["-v", `${DATA}:/var/lib/postgresql/data`, "-v", `${TLS}:/tls:ro`],
    IMAGE,
  ]);
  for (let attempt = 0; attempt < 60; attempt += 1) {
    const ready = await docker(["exec", SERVER, "pg_isready", "-U", "postgres"], {
      allowFailure: true,
    });
    if (ready.code === 0) {
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${SERVER} did not take connections within 30 s`);
}

export async function stopExternalPostgres(): Promise<void> {
  await docker(["rm", "-f", "-v", SERVER], { allowFailure: true });
  await docker(["volume", "rm", "-f", ...VOLUMES], { allowFailure: true });
  await docker(["network", "rm", EXTERNAL_NETWORK], { allowFailure: true });
}

/** The server as edms-ops reaches it with one of the credentials volumes, by name or another host. */
export function externalServer(
  credentials: Credentials = "admin",
  overrides: Partial<ExternalServer> = {},
): ExternalServer {
  return {
    kind: "external",
    host: EXTERNAL_HOST,
    port: 5432,
    database: "edms",
    user: credentials === "limited" ? "edms_limited" : "edms_admin",
    sslMode: "verify-full",
    clientImage: IMAGE,
    network: EXTERNAL_NETWORK,
    credentialsVolume: CREDENTIALS[credentials],
    labels: { "edms.role": EXTERNAL_ROLE },
    ...overrides,
  };
}

/** A superuser's psql inside the server (the provider's console, never edms-ops'): for test setup and checks. */
export async function asProvider(sql: string, database = "edms"): Promise<string> {
  const result = await docker(
    [
      "exec",
      "-i",
      SERVER,
      "psql",
      "-v",
      "ON_ERROR_STOP=1",
      "-qAtX",
      "-U",
      "postgres",
      "-d",
      database,
    ],
    { input: sql },
  );
  return result.stdout.trim();
}

/**
 * psql as `user` with `password` over TCP and TLS from inside the server's container (a role's login, as the
 * app makes it); `background`: started and left running, its result awaited later.
 */
export function asLogin(user: string, password: string, sql: string): Promise<RunResult> {
  return docker(
    [
      "exec",
      "-i",
      ...["-e", `PGPASSWORD=${password}`],
      SERVER,
      "psql",
      `host=localhost sslmode=require user=${user} dbname=edms`,
      ...["-v", "ON_ERROR_STOP=1", "-qAtX"],
    ],
    { input: sql, allowFailure: true },
  );
}

/** The server's address on its network: to reach it by a name its certificate does not carry. */
export async function externalAddress(): Promise<string> {
  const inspect = await docker([
    "inspect",
    "-f",
    `{{(index .NetworkSettings.Networks "${EXTERNAL_NETWORK}").IPAddress}}`,
    SERVER,
  ]);
  return inspect.stdout.trim();
}

/** The volume of the test CA's certificates: the S3 server's TLS (s3.crt, s3.key) for startS3Server. */
export const EXTERNAL_TLS_VOLUME = TLS;

/** The test CA's certificate (PEM), as an operator puts it next to the stack for `edms:database.caCertificateFile`. */
export async function externalCaPem(): Promise<string> {
  return (await docker(["exec", SERVER, "cat", "/tls/ca.crt"])).stdout;
}

/** A database (`edms` unless named) emptied for a new stack: dropped (with its sessions) and created again, owned by the admin. */
export async function recreateExternalDatabase(name = "edms"): Promise<void> {
  await asProvider(`DROP DATABASE IF EXISTS ${name} WITH (FORCE);`, "postgres");
  await asProvider(`CREATE DATABASE ${name} OWNER edms_admin;`, "postgres");
}
