/**
 * `validateSettings`: raw stack config in, `Settings` out, or one `ConfigError` listing every problem.
 * The program (components/config.ts), edms-ops (reading `Pulumi.<stack>.yaml` itself) and the tests all
 * call it, so they apply exactly the same rules.
 */
import { z } from "zod";
import { DEFAULT_SCHEDULES, SCHEDULE_OFF } from "../schedule";
import { alertTargetCount } from "./alerts";
import { parseJsonish, settingMeta } from "./fields";
import { ENVIRONMENTS } from "./environments";
import { DjangoSettings, httpsRuleProblems } from "./https";
import { resourceNames } from "./names";
import { DEFAULTS, KNOWN_KEYS, settingsSchema } from "./schema";
import { ConfiguredSettings, RawConfig, Settings } from "./types";

/** Thrown with every problem found, one per line, so an operator fixes a stack file in one pass. */
export class ConfigError extends Error {
  constructor(
    readonly stack: string,
    readonly problems: readonly string[],
  ) {
    super(
      `Stack \`${stack}\` has ${problems.length} configuration problem(s):\n  - ${problems.join("\n  - ")}`,
    );
    this.name = "ConfigError";
  }
}

type Values = Partial<Record<keyof ConfiguredSettings, unknown>>;

function unknownKeyProblems(raw: RawConfig): string[] {
  return Object.keys(raw)
    .filter((key) => !KNOWN_KEYS.includes(key))
    .map(
      (key) =>
        `\`edms:${key}\` is not a known setting. Remove it, or check the spelling against Pulumi.yaml.`,
    );
}

/** Each key on its own, so every problem names its key and ends with that key's fix. */
function parseKeys(raw: RawConfig, problems: string[]): Values {
  // Only `edms:backup`'s defaults depend on the environment; with no valid one the stack is refused anyway.
  const environment = settingsSchema("dev").shape.environment.safeParse(
    parseJsonish(raw.environment),
  );
  const schema = settingsSchema(environment.success ? environment.data : "dev");
  const values: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema.shape) as [string, z.ZodType][]) {
    const { fix } = settingMeta(field);
    const value = parseJsonish(raw[key]) ?? undefined;
    const parsed = field.safeParse(value);
    if (parsed.success) {
      values[key] = parsed.data;
    } else if (value === undefined) {
      problems.push(`\`edms:${key}\` is required: ${fix}.`);
    } else {
      const why = parsed.error.issues.map((i) => i.message).join("; ");
      problems.push(`\`edms:${key}\` ${why}: ${fix}.`);
    }
  }
  return values;
}

const isFalse = (v: unknown) => v === false || v === "false";
const isTrue = (v: unknown) => v === true || v === "true";

/**
 * What production refuses and what needs another key. Read from the raw value: a production stack that
 * turns the backup off must hear so even when the same object has another mistake.
 */
function backupRuleProblems(raw: RawConfig, environment: unknown): string[] {
  const backup = parseJsonish(raw.backup) as
    { beforeDeploy?: unknown; drillBeforeDeploy?: unknown; schedule?: unknown } | undefined;
  const problems: string[] = [];
  if (environment !== "production") {
    if (isTrue(backup?.drillBeforeDeploy) && !isTrue(backup?.beforeDeploy)) {
      problems.push(
        "`edms:backup.drillBeforeDeploy: true` needs `edms:backup.beforeDeploy: true`: the drill restores the pre-deploy backup. Set `beforeDeploy: true` too, or remove `drillBeforeDeploy`.",
      );
    }
    return problems;
  }
  if (raw.dataGeneration !== undefined) {
    problems.push(
      "`edms:dataGeneration` is not allowed on production: production data is never reinitialised. Remove it from Pulumi.production.yaml.",
    );
  }
  if (isFalse(backup?.beforeDeploy)) {
    problems.push(
      "`edms:backup.beforeDeploy: false` is not allowed on production: every production deploy is preceded by a backup. Remove `beforeDeploy` or set it to true.",
    );
  }
  if (isFalse(backup?.drillBeforeDeploy)) {
    problems.push(
      "`edms:backup.drillBeforeDeploy: false` is not allowed on production: a production deploy migrates only after its pre-deploy backup has been restored and checked in scratch space. Remove `drillBeforeDeploy` or set it to true.",
    );
  }
  if (typeof backup?.schedule === "string" && backup.schedule.trim() === SCHEDULE_OFF) {
    problems.push(
      `\`edms:backup.schedule: off\` is not allowed on production: production is backed up on a schedule from the Docker host, not only before deploys. Remove \`schedule\` for the default (\`${DEFAULT_SCHEDULES.production}\`) or set a cron expression, e.g. \`0 */4 * * *\`.`,
    );
  }
  return problems;
}

/** Alerts are sent by the scheduler container, which exists only with a schedule. */
function alertRuleProblems(values: Values): string[] {
  const alerts = values.alerts as ConfiguredSettings["alerts"] | undefined;
  const backup = values.backup as ConfiguredSettings["backup"] | undefined;
  if (alerts && alertTargetCount(alerts) > 0 && backup?.schedule.trim() === SCHEDULE_OFF) {
    return [
      "`edms:alerts` needs `edms:backup.schedule`: alerts are sent from the Docker host by the scheduler container, which runs only with a schedule. Set a schedule (e.g. `@daily`) or remove the alert targets.",
    ];
  }
  return [];
}

/** Production reaches an external database (`edms:database`) over verified TLS; nothing starts it afresh. */
function databaseRuleProblems(values: Values, environment: unknown): string[] {
  const database = values.database as ConfiguredSettings["database"];
  if (!database) {
    return [];
  }
  const problems: string[] = [];
  if (environment === "production" && database.sslMode !== "verify-full") {
    problems.push(
      `\`edms:database.sslMode: ${database.sslMode}\` is not allowed on production: production reaches its database over TLS with the server's certificate and name checked. Set \`sslMode: verify-full\` and \`caCertificateFile\`.`,
    );
  }
  if (typeof values.dataGeneration === "number" && values.dataGeneration > 0) {
    problems.push(
      "`edms:dataGeneration` cannot start an external database afresh (`edms:database`): the program never empties or replaces it, and a new generation would give the stack empty media beside it. Use `edms:database` on a stack at generation 0 (a stack above it keeps its media in a volume named by it: move them to a new stack's first).",
    );
  }
  return problems;
}

/** Production sends its documents to the bucket over TLS; nothing starts bucket media afresh. */
function mediaRuleProblems(values: Values, environment: unknown): string[] {
  const media = values.media as ConfiguredSettings["media"];
  if (!media) {
    return [];
  }
  const problems: string[] = [];
  if (environment === "production" && !media.endpoint.startsWith("https://")) {
    problems.push(
      `\`edms:media.endpoint: ${media.endpoint}\` is not allowed on production: production sends its documents and keys to the bucket over TLS only. Set an https:// endpoint.`,
    );
  }
  if (typeof values.dataGeneration === "number" && values.dataGeneration > 0) {
    problems.push(
      "`edms:dataGeneration` cannot start media in a bucket afresh (`edms:media`): the program never empties the bucket's prefix. Use `edms:media` on a stack at generation 0, or `edms-ops reset` on staging and dev.",
    );
  }
  return problems;
}

function proxyRuleProblems(values: Values): string[] {
  const proxy = values.proxy as ConfiguredSettings["proxy"] | undefined;
  // A port that failed its own check is reported there; compare with what would be published.
  const httpPort = (values.httpPort as number | undefined) ?? DEFAULTS.httpPort;
  const problems: string[] = [];
  if (proxy?.tls && proxy.tls.port === httpPort) {
    problems.push(
      `\`edms:proxy.tls.port\` must differ from \`edms:httpPort\` (${httpPort}): both are published by the proxy. Choose another port, e.g. 443.`,
    );
  }
  if (proxy?.tls && proxy.enabled === false) {
    problems.push(
      "`edms:proxy.tls` needs the proxy: TLS is terminated there. Remove `enabled: false` or the `tls` block.",
    );
  }
  return problems;
}

/**
 * The environment a stack's name vouches for: `dev`, `staging`, `production`, and any name with `prod` or
 * `production` as a word (`prod-eu`, `edms_production`; not `pre-prod` or `non-prod`). Every production
 * guard (protection, the policy pack, no `dataGeneration`, the pre-deploy backup and drill) keys on
 * `edms:environment`, a line of the same file: one edit must not turn them all off for the production stack.
 */
export function environmentOfName(stack: string): string | undefined {
  if ((ENVIRONMENTS as readonly string[]).includes(stack)) {
    return stack;
  }
  // `pre-prod` and `non-prod` say the opposite.
  const production =
    /(^|[^a-z0-9])prod(uction)?([^a-z0-9]|$)/i.test(stack) && !/(pre|non)[-_.]?prod/i.test(stack);
  return production ? "production" : undefined;
}

function stackNameProblems(stack: string, environment: unknown): string[] {
  const named = environmentOfName(stack);
  if (named === undefined || environment === undefined || environment === named) {
    return [];
  }
  return [
    `\`edms:environment\` is \`${String(environment)}\` on stack \`${stack}\`, whose name says ${named}: the guards of ${named} (volume protection, the policy pack, no \`dataGeneration\`, the pre-deploy backup and drill) follow \`edms:environment\`, so the two must agree. Set \`edms:environment: ${named}\`, or use a stack of another name for a ${String(environment)} environment.`,
  ];
}

export function validateSettings(stack: string, raw: RawConfig, dockerHost?: string): Settings {
  const problems = unknownKeyProblems(raw);
  const values = parseKeys(raw, problems);
  problems.push(
    ...stackNameProblems(stack, values.environment),
    ...backupRuleProblems(raw, values.environment),
    ...proxyRuleProblems(values),
    ...databaseRuleProblems(values, values.environment),
    ...mediaRuleProblems(values, values.environment),
    ...alertRuleProblems(values),
    ...httpsRuleProblems(
      {
        ...values,
        bindAddress: values.bindAddress as string | undefined,
        tlsUpstream: values.tlsUpstream as boolean | undefined,
        proxy: values.proxy as { tls?: unknown } | undefined,
        django: values.django as DjangoSettings | undefined,
      },
      // A key that failed its own check is reported there, not again as missing.
      Object.keys(raw).filter(
        (key) => raw[key] !== undefined && values[key as keyof Values] === undefined,
      ),
    ),
  );
  if (problems.length > 0 || values.environment === undefined) {
    throw new ConfigError(stack, problems);
  }
  // Every key holds its value or its default now, in the schema's order (which is the JSON's order).
  const settings = values as ConfiguredSettings;
  return {
    stack,
    ...settings,
    dockerHost: dockerHost || undefined,
    names: resourceNames(settings.namePrefix, settings.dataGeneration),
  };
}
