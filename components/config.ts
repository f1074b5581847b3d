/**
 * The only module that reads `pulumi.Config`. Everything else receives the typed, validated `Settings`
 * (model/settings.ts, shared with edms-ops and the tests).
 */
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import {
  alertSecrets,
  ConfiguredMedia,
  ConfigError,
  databasePassword,
  ExternalDatabase,
  mediaSecretKey,
  KNOWN_KEYS,
  maskAlertTargets,
  offsiteSecrets,
  parseJsonish,
  ProxyTlsSettings,
  RawConfig,
  validateSettings,
} from "../model/settings";

import type { EdmsArgs } from "./edms";

export * from "../model/settings";

/** What the program reads from the stack: the Edms component's own arguments (secrets as outputs). */
export type LoadedConfig = EdmsArgs;

// Not in the SDK's typings, but what Config.get itself asks before it warns about a secret.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { isConfigSecret } = require("@pulumi/pulumi/runtime/config") as {
  isConfigSecret: (key: string) => boolean;
};

/** `edms:backup` with the off-host repository and variables as the stack file keeps secrets. */
function maskOffsite(backup: unknown): unknown {
  const value = parseJsonish(backup) as { offsite?: { env?: Record<string, unknown> } } | undefined;
  if (!value?.offsite || typeof value.offsite !== "object") {
    return backup;
  }
  const masked = { secure: "(decrypted by pulumi)" };
  const env = value.offsite.env;
  return {
    ...value,
    offsite: {
      ...value.offsite,
      repository: masked,
      ...(env && typeof env === "object"
        ? { env: Object.fromEntries(Object.keys(env).map((k) => [k, masked])) }
        : {}),
    },
  };
}

/** `edms:database` with its password as the stack file keeps a secret. */
function maskDatabase(database: unknown): unknown {
  const value = parseJsonish(database) as { password?: unknown } | undefined;
  return value && typeof value === "object" && value.password !== undefined
    ? { ...value, password: { secure: "(decrypted by pulumi)" } }
    : database;
}

/** `edms:media` with its secret key as the stack file keeps a secret. */
function maskMedia(media: unknown): unknown {
  const value = parseJsonish(media) as { secretAccessKey?: unknown } | undefined;
  return value && typeof value === "object" && value.secretAccessKey !== undefined
    ? { ...value, secretAccessKey: { secure: "(decrypted by pulumi)" } }
    : media;
}

/** Reads the current stack's config. Call once, from index.ts. */
export function loadConfig(): LoadedConfig {
  const config = new pulumi.Config("edms");
  const raw: RawConfig = {};
  for (const key of KNOWN_KEYS) {
    if (key !== "superuserPassword") {
      // The raw value, without Config.get's secret warning: `edms:backup` turns secret as soon as one of
      // its offsite credentials is, and those leave this function only inside `pulumi.secret` below.
      const value = pulumi.runtime.getConfig(`edms:${key}`);
      if (value !== undefined) {
        raw[key] = value;
      }
    }
  }
  // Unknown `edms:*` keys are typos worth failing on; the SDK exposes all config of the stack.
  const all = pulumi.runtime.allConfig();
  for (const fullKey of Object.keys(all)) {
    const [namespace, key] = fullKey.split(":");
    if (namespace === "edms" && key !== undefined && !KNOWN_KEYS.includes(key)) {
      raw[key] = all[fullKey];
    }
  }
  const dockerHost = new pulumi.Config("docker").get("host");
  // A secret `edms:backup` or `edms:alerts` is validated as the stack file holds it (credentials
  // encrypted), so only an off-host password or an alert URL given in plain text is refused.
  const settings = validateSettings(
    pulumi.getStack(),
    {
      ...raw,
      ...(isConfigSecret("edms:backup") ? { backup: maskOffsite(raw.backup) } : {}),
      ...(isConfigSecret("edms:alerts") ? { alerts: maskAlertTargets(raw.alerts) } : {}),
      ...(isConfigSecret("edms:database") ? { database: maskDatabase(raw.database) } : {}),
      ...(isConfigSecret("edms:media") ? { media: maskMedia(raw.media) } : {}),
    },
    dockerHost,
  );
  const offsite = offsiteSecrets(raw.backup);
  const alerts = alertSecrets(raw.alerts);
  return {
    settings,
    superuserPassword: config.getSecret("superuserPassword"),
    tlsPem: settings.proxy.tls ? readTlsPem(settings.proxy.tls) : undefined,
    backupSecrets: offsite ? pulumi.secret(offsite) : undefined,
    alertTargets: alerts ? pulumi.secret(alerts) : undefined,
    externalDatabase: settings.database ? readDatabase(settings.database, raw.database) : undefined,
    bucketMedia: settings.media ? readMedia(settings.media, raw.media) : undefined,
  };
}

/** The bucket key's secret (a secret). */
function readMedia(media: ConfiguredMedia, raw: unknown): EdmsArgs["bucketMedia"] {
  const key = mediaSecretKey(raw);
  if (!key || /[\r\n]/.test(key)) {
    throw new ConfigError(pulumi.getStack(), [
      `\`edms:media.secretAccessKey\` is ${key ? "a value with a line break, which no credentials file can hold" : "missing or empty"}: set it with \`pulumi config set --secret --path edms:media.secretAccessKey <key>\`.`,
    ]);
  }
  const file = media.caCertificateFile;
  return {
    secretKey: pulumi.secret(key),
    ...(file === undefined
      ? {}
      : { caCertificate: readCa("media.caCertificateFile", file, "endpoint") }),
  };
}

/** A CA's PEM file next to the stack (`edms:<key>`), read and checked; ends with a newline. */
function readCa(key: string, file: string, signed: string): string {
  let ca: string;
  try {
    ca = fs.readFileSync(path.resolve(file), "utf8");
  } catch (err) {
    throw new ConfigError(pulumi.getStack(), [
      `\`edms:${key}\` cannot be read (${(err as Error).message}): put the CA's PEM file there or fix the path.`,
    ]);
  }
  if (!/-----BEGIN CERTIFICATE-----/.test(ca)) {
    throw new ConfigError(pulumi.getStack(), [
      `\`edms:${key}\` (${file}) holds no -----BEGIN CERTIFICATE----- block: give the PEM file of the CA that signed the ${signed}'s certificate.`,
    ]);
  }
  // The file goes into containers and the hooks' environment: a key in it would travel with it.
  if (/PRIVATE KEY-----/.test(ca)) {
    throw new ConfigError(pulumi.getStack(), [
      `\`edms:${key}\` (${file}) holds a private key: give a file with the CA's certificate only (-----BEGIN CERTIFICATE----- blocks).`,
    ]);
  }
  return ca.endsWith("\n") ? ca : `${ca}\n`;
}

/** The external database's password (a secret) and its server's CA, read from the file next to the stack. */
function readDatabase(database: ExternalDatabase, raw: unknown): EdmsArgs["externalDatabase"] {
  const password = databasePassword(raw);
  // A pgpass file holds one line per entry, and libpq drops a trailing carriage return.
  if (!password || /[\r\n]/.test(password)) {
    throw new ConfigError(pulumi.getStack(), [
      `\`edms:database.password\` is ${password ? "a value with a line break, which no pgpass file can hold" : "missing or empty"}: set the role's password with \`pulumi config set --secret --path edms:database.password <password>\`.`,
    ]);
  }
  const file = database.caCertificateFile;
  if (file === undefined) {
    return { password: pulumi.secret(password) };
  }
  return {
    password: pulumi.secret(password),
    caCertificate: readCa("database.caCertificateFile", file, "server"),
  };
}

/**
 * Read here, at deploy time, from files next to the stack: the key then lives only in the encrypted state and
 * in the proxy container's file, never in config text, env or argv.
 */
function readTlsPem(tls: ProxyTlsSettings): pulumi.Output<string> {
  const problems: string[] = [];
  const read = (key: string, file: string, marker: RegExp) => {
    try {
      const text = fs.readFileSync(path.resolve(file), "utf8");
      if (!marker.test(text)) {
        problems.push(`\`edms:proxy.tls.${key}\` (${file}) holds no ${marker.source} block.`);
      }
      return text.endsWith("\n") ? text : `${text}\n`;
    } catch (err) {
      problems.push(
        `\`edms:proxy.tls.${key}\` cannot be read (${(err as Error).message}): put the PEM file there or fix the path.`,
      );
      return "";
    }
  };
  const certificate = read("certificateFile", tls.certificateFile, /-----BEGIN CERTIFICATE-----/);
  const key = read("keyFile", tls.keyFile, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  if (problems.length) {
    throw new ConfigError(pulumi.getStack(), problems);
  }
  return pulumi.secret(certificate + key);
}
