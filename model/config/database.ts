/**
 * `edms:database`: an external PostgreSQL (a managed server or a dedicated host) instead of the stack's own
 * postgres container. Its password reaches the program as a Pulumi secret (`databasePassword`); Settings,
 * which travel as plain JSON (hooks' env, the scheduler's), keep the rest.
 */
import { z } from "zod";
import { maybeSecret, nonEmpty, parseJsonish, pemFile, port, setting } from "./fields";

export const SSL_MODES = ["disable", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** A DNS name or an IPv4/IPv6 address; nothing a shell or a libpq connection string could read otherwise. */
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]+)$/;
/** A role name edms-ops can pass as `-U` and quote in SQL. */
const ROLE = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;
/** A Docker network name (as `docker network create` accepts it). */
const NETWORK = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export const DATABASE_FIX =
  "e.g. `{host: db.example.com, port: 5432, user: edms_admin, sslMode: verify-full, caCertificateFile: certs/db-ca.pem}` and `pulumi config set --secret --path edms:database.password <password>`";

export const databaseSchema = z
  .object(
    {
      host: setting(
        nonEmpty("a host name (database.host)").regex(
          HOST,
          "database.host must be a DNS name or an IP address (IPv6 without brackets)",
        ),
        { description: "Host name (or address) of the PostgreSQL server." },
      ),
      port: setting(port.default(5432), { description: "Its port (default 5432)." }),
      name: setting(
        z
          .string({ error: "database.name must be a database name" })
          .regex(
            /^[a-z_][a-z0-9_]{0,40}$/,
            "database.name must be a database name of lowercase letters, digits and _ (at most 41 characters: restores add _pre_restore)",
          )
          .refine(
            (n) => !["postgres", "template0", "template1"].includes(n),
            "database.name cannot be the server's own postgres, template0 or template1: name the stack's database",
          )
          .default("edms"),
        {
          description:
            "The stack's database on the server (default edms), owned by user. A restore fills <name>_restore beside it and swaps the two (the old one is <name>_pre_restore until it is dropped).",
        },
      ),
      user: setting(
        nonEmpty("a role name (database.user)").regex(
          ROLE,
          "database.user must be a role name (letters, digits, _, $, -; at most 63)",
        ),
        {
          description:
            "The role edms-ops and the app connect as: the owner of the database `name`, with CREATEDB (restores fill a database beside the live one) and, for an application role of its own, CREATEROLE. Never needs to be a superuser.",
        },
      ),
      password: setting(
        maybeSecret("a password (database.password)").refine(
          (v) => typeof v !== "string",
          "database.password is in plain text: set it with `pulumi config set --secret --path edms:database.password <password>`",
        ),
        { description: "The role's password; set with `--secret`.", secret: true },
      ),
      sslMode: setting(
        z
          .enum(SSL_MODES, { error: `database.sslMode must be one of ${SSL_MODES.join(", ")}` })
          .default("verify-full"),
        {
          description:
            "libpq's sslmode: verify-full (the default) checks the server's certificate against caCertificateFile and its name against host. Production allows only verify-full.",
        },
      ),
      caCertificateFile: setting(pemFile("database.caCertificateFile").optional(), {
        description:
          "PEM file of the CA that signed the server's certificate, relative to the project directory; needed by verify-ca and verify-full. Read at deploy time and given to every client as a file.",
      }),
      network: setting(
        z
          .string({ error: "database.network must be a Docker network name" })
          .regex(NETWORK, "database.network must be a Docker network name")
          .refine(
            (n) => !["host", "none"].includes(n),
            "database.network cannot be `host` or `none`: name a network the server is reached through",
          )
          .optional(),
        {
          description:
            "An existing Docker network the server is reached through (a database container or a tunnel on this host). Without it the stack's own `<prefix>-database` network (a bridge with a gateway) carries the connections.",
        },
      ),
    },
    { error: "database must be an object with host, user and password" },
  )
  .strict()
  .superRefine((d, ctx) => {
    if ((d.sslMode === "verify-ca" || d.sslMode === "verify-full") && !d.caCertificateFile) {
      ctx.addIssue({
        code: "custom",
        message: `database.sslMode ${d.sslMode} needs database.caCertificateFile (the CA's PEM file)`,
      });
    }
  })
  // The password stays out of Settings (plain JSON in hooks' env and the scheduler's): databasePassword().
  .transform(({ password: _password, ...rest }) => rest);

export type ExternalDatabase = z.output<typeof databaseSchema>;

/** The database password of an already validated `edms:database`, decrypted: only ever handed to Pulumi as a secret. */
export function databasePassword(database: unknown): string | undefined {
  const password = (parseJsonish(database) as { password?: unknown } | undefined)?.password;
  return typeof password === "string" ? password : undefined;
}

/** What of a stack's settings says where its database is. */
interface StackDatabase {
  readonly database?: Pick<ExternalDatabase, "host" | "port" | "user" | "name">;
  readonly names: { readonly postgresVolume: string };
}

/**
 * Which database a record (a deployment, the bootstrap's row counts, a manifest) was made on: the stack's
 * postgres volume, or the external server's role, host, port and database. A reset or a new data generation
 * gives the stack's own a new one; records of another keep their key (`postgresVolume`).
 */
export function databaseIdentity(settings: StackDatabase): string {
  const database = settings.database;
  return database
    ? `postgresql://${database.user}@${database.host}:${database.port}/${database.name}`
    : settings.names.postgresVolume;
}

/** The database in messages: its volume, or the external server. */
export function databaseDescription(settings: StackDatabase): string {
  const database = settings.database;
  return database
    ? `external database ${database.name} on ${database.host}:${database.port}`
    : `volume ${settings.names.postgresVolume}`;
}
