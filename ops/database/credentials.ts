/**
 * edms-ops' credentials for an external database (`edms:database`), on the stack's credentials volume: a
 * pgpass line for the admin role, its password alone (the one-off Django containers' password file) and the
 * server's CA. The `backupInit` hook hands the password and the CA over in its environment; they reach the
 * volume as a tar stream on stdin, never argv, container env or output. Root-only but the CA (a certificate).
 */
import { pgpassField } from "../../model/containers";
import { ExternalDatabase, Settings } from "../../model/settings";
import { failure, refuse } from "../core/errors";
import { lastLine } from "../core/log";
import { docker, volumeExists } from "../engine/docker";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { tarball, TarEntry } from "../engine/tarball";
import { OPS_HELPER_ROLE } from "../store/restic";
import { CREDENTIALS_DIR } from "./server";

/** The files, relative to the volume (server.ts mounts it at CREDENTIALS_DIR). */
const FILES = { pgpass: "pgpass", password: "password", ca: "ca.crt" } as const;

/**
 * Unpacks into a folder of its own, then renames each file into place: a client reading meanwhile sees the old
 * file or the new one. A CA the config no longer has is removed (sslMode without verification). What a killed
 * write left (a folder holding the password) goes with the next one.
 */
const WRITE_SCRIPT = `
umask 077
cd ${CREDENTIALS_DIR}
find . -maxdepth 1 -name '.incoming.*' -mmin +10 -exec rm -rf {} +
incoming=$(mktemp -d .incoming.XXXXXX)
trap 'rm -rf "$incoming"' EXIT
tar -x -o -C "$incoming"
for f in ${FILES.pgpass} ${FILES.password}; do mv "$incoming/$f" "$f"; done
if [ -f "$incoming/${FILES.ca}" ]; then chmod 644 "$incoming/${FILES.ca}"; mv "$incoming/${FILES.ca}" ${FILES.ca}; else rm -f ${FILES.ca}; fi
sync`;

/** The admin's pgpass line: this server and port only, every field escaped as libpq reads it. */
export function pgpassLine(database: ExternalDatabase, password: string): string {
  return `${pgpassField(database.host)}:${database.port}:*:${pgpassField(database.user)}:${pgpassField(password)}\n`;
}

function helperArgs(settings: Settings, script: string, readOnly: boolean): string[] {
  return dockerRunArgs({
    image: settings.postgresImage,
    entrypoint: "sh",
    args: ["-euc", script],
    remove: true,
    stdin: true,
    logging: false,
    network: "none",
    user: "0",
    labels: opsLabels(settings, OPS_HELPER_ROLE),
    mounts: [{ volume: settings.names.databaseCredentialsVolume, path: CREDENTIALS_DIR, readOnly }],
    limits: settings.limits.helpers,
  });
}

/** Refuses, naming the deploy that makes it, a write to a credentials volume the program has not created. */
export async function requireCredentialsVolume(
  settings: Settings,
  volume: string,
  of: string,
): Promise<void> {
  if (!(await volumeExists(volume))) {
    throw refuse(
      `The credentials volume ${volume} of stack ${settings.stack}'s ${of} does not exist. Nothing was changed.`,
      `Deploy the stack (\`pulumi up --stack ${settings.stack}\`): it creates the volume and writes it.`,
    );
  }
}

/**
 * With an external database and its password in EDMS_DATABASE_PASSWORD (the CA in EDMS_DATABASE_CA): writes
 * them to the credentials volume. False when there is nothing to write.
 */
export async function storeDatabaseCredentials(
  settings: Settings,
  env: NodeJS.ProcessEnv = process.env,
): Promise<boolean> {
  const password = env.EDMS_DATABASE_PASSWORD;
  const database = settings.database;
  if (!database || !password) {
    return false;
  }
  if (/[\r\n]/.test(password)) {
    throw refuse(
      "EDMS_DATABASE_PASSWORD holds a line break, which no pgpass file can hold. Nothing was changed.",
      "Give the role a password without one (on the server and in `edms:database.password`), then run `pulumi up` again.",
    );
  }
  const volume = settings.names.databaseCredentialsVolume;
  await requireCredentialsVolume(settings, volume, "external database");
  const entries: TarEntry[] = [
    { name: FILES.pgpass, content: pgpassLine(database, password), mode: 0o600 },
    { name: FILES.password, content: password, mode: 0o600 },
  ];
  if (env.EDMS_DATABASE_CA) {
    entries.push({ name: FILES.ca, content: env.EDMS_DATABASE_CA, mode: 0o644 });
  }
  const result = await docker(helperArgs(settings, WRITE_SCRIPT, false), {
    input: await tarball(entries),
    allowFailure: true,
  });
  if (result.code !== 0) {
    throw failure(
      `could not write the external database's credentials to ${volume}: ${lastLine(result.stderr)}`,
      `Check the Docker host's disk and the volume (\`docker volume inspect ${volume}\`), then run \`pulumi up --stack ${settings.stack}\` again.`,
    );
  }
  return true;
}

/**
 * The external admin's password and the server's CA, for a one-off Django container an operator's command
 * starts (a hook has them in its environment): read from the credentials volume, never printed.
 */
export async function readDatabaseCredentials(
  settings: Settings,
): Promise<{ readonly password: string; readonly ca?: string }> {
  const volume = settings.names.databaseCredentialsVolume;
  const script = `cat ${FILES.password}; printf '\\n--ca--\\n'; cat ${FILES.ca} 2>/dev/null || true`;
  const result = await docker(helperArgs(settings, `cd ${CREDENTIALS_DIR}; ${script}`, true), {
    allowFailure: true,
  });
  const at = result.stdout.lastIndexOf("\n--ca--\n");
  if (result.code !== 0 || at < 0) {
    throw failure(
      `The external database's credentials are not readable in ${volume}: ${lastLine(result.stderr)}`,
      `Write them again: \`EDMS_RESTIC_PASSWORD=… EDMS_DATABASE_PASSWORD=… edms-ops backups init --stack ${settings.stack}\` (a deploy writes them only on a new host, or when the password, the CA or the server changes).`,
    );
  }
  const ca = result.stdout.slice(at + "\n--ca--\n".length);
  return { password: result.stdout.slice(0, at), ...(ca ? { ca } : {}) };
}
