/**
 * Where edms-ops' PostgreSQL clients connect: the stack's own server in its container (`docker exec`, as the
 * superuser over the local socket), or an external server (a managed PostgreSQL or a dedicated host) reached
 * over the network by a client container of the server's major version. The external form never puts a secret
 * in argv or env: the password is in a pgpass file and the CA in a file, both on a credentials volume the
 * client mounts read-only; TLS is asked by `sslmode` (`verify-full` checks the server's name against the CA).
 */
import { Confinement, CONFINEMENT } from "../../model/hardening";
import { POSTGRES_DB, sslModeVerifies } from "../../model/containers";
import { SslMode } from "../../model/settings";
import { dockerRunArgs } from "../engine/dockerRun";

/** The stack's own server: a container edms-ops reaches by `docker exec`. */
export interface ContainerServer {
  readonly kind: "container";
  readonly container: string;
  /** The stack's database on it (POSTGRES_DB). */
  readonly database: string;
}

/** An external server, reached over `network` by a client container of `clientImage`. */
export interface ExternalServer {
  readonly kind: "external";
  readonly host: string;
  readonly port: number;
  /** The stack's database on it (`edms:database.name`). */
  readonly database: string;
  /** The role edms-ops connects as: the database's admin (CREATEDB, owner of the database), never assumed superuser. */
  readonly user: string;
  readonly sslMode: SslMode;
  /** A postgres image whose client tools are of the server's major version (pg_dump refuses a newer server). */
  readonly clientImage: string;
  /** A Docker network the server is reachable from. */
  readonly network: string;
  /** Holds `pgpass` (0600) and, for `verify-ca`/`verify-full`, `ca.crt`. */
  readonly credentialsVolume: string;
  /** Labels of the client containers (the stack's, so a cleanup finds a killed one). */
  readonly labels?: Readonly<Record<string, string>>;
}

export type DatabaseServer = ContainerServer | ExternalServer;

export const containerServer = (container: string): ContainerServer => ({
  kind: "container",
  container,
  database: POSTGRES_DB,
});

/** Where the credentials volume is mounted in the client container, and its two files. */
export const CREDENTIALS_DIR = "/run/edms-db";
export const PGPASS_FILE = `${CREDENTIALS_DIR}/pgpass`;
export const CA_FILE = `${CREDENTIALS_DIR}/ca.crt`;

/** The server in messages: its container, or host:port (never a credential). */
export function serverName(server: DatabaseServer): string {
  return server.kind === "container" ? server.container : `${server.host}:${server.port}`;
}

/** A client needs nothing but to read its files and connect: no capability, a read-only root. */
const CLIENT_CONFINEMENT: Confinement = { ...CONFINEMENT.helpers, capabilities: [] };

/**
 * `docker run` argv of one client tool against an external server: `-i` for SQL or a dump on stdin, the
 * tool as entrypoint, connection parameters as libpq variables (none secret), the password from the pgpass
 * file. A connection that cannot be made fails within 10 s instead of hanging an operation.
 */
export function externalClientArgs(
  server: ExternalServer,
  tool: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): string[] {
  return dockerRunArgs({
    image: server.clientImage,
    entrypoint: tool,
    args: ["-h", server.host, "-p", String(server.port), "-U", server.user, ...args],
    remove: true,
    stdin: true,
    logging: false,
    network: server.network,
    user: "0",
    labels: server.labels,
    confinement: CLIENT_CONFINEMENT,
    mounts: [{ volume: server.credentialsVolume, path: CREDENTIALS_DIR, readOnly: true }],
    env: [...externalClientEnv(server), ...Object.entries(env).map(([n, v]) => `${n}=${v}`)],
  });
}

/**
 * libpq's variables of a client of `server`, none secret: its pgpass file and the server's CA where they are
 * (by default the credentials volume at CREDENTIALS_DIR), TLS as `sslMode` asks, a 10 s connect timeout.
 */
export function externalClientVariables(
  server: ExternalServer,
  files: { readonly pgpass: string; readonly ca: string } = { pgpass: PGPASS_FILE, ca: CA_FILE },
): Record<string, string> {
  return {
    PGPASSFILE: files.pgpass,
    PGSSLMODE: server.sslMode,
    ...(sslModeVerifies(server.sslMode) ? { PGSSLROOTCERT: files.ca } : {}),
    PGCONNECT_TIMEOUT: "10",
  };
}

/** externalClientVariables as `NAME=value` pairs of a container's environment. */
export function externalClientEnv(server: ExternalServer): string[] {
  return Object.entries(externalClientVariables(server)).map(([n, v]) => `${n}=${v}`);
}
