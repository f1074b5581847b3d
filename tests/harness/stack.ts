import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { resourceNames, ResourceNames } from "../../model/settings";
import { readStackConfig } from "../../model/stackFile";
import { docker } from "../../ops/engine/docker";
import type { ScheduleRecord, ScheduleRun } from "../../ops/schedule/records";
import { dockerRunArgs } from "../../ops/engine/dockerRun";
import { asProvider, EXTERNAL_PREFIX, EXTERNAL_ROLE } from "./externalPostgres";
import { S3_PREFIX, S3_ROLE } from "./s3Server";
import { REPO_ROOT } from "./mocks";
import { Applier, ApplyResult } from "./applier";

export const PROJECT_DIR = fs.mkdtempSync(path.join(os.tmpdir(), "edms-e2e-"));
export const applier = new Applier(PROJECT_DIR, path.join(PROJECT_DIR, "state"));
/** The off-host test servers' role label and data volumes (startOffsiteServer, one set per test process). */
const OFFSITE_ROLE = "test-offsite";
const OFFSITE_DATA_PREFIX = "e2e-offsite-data-";

/** Starts dockerd when nothing answers and builds the offline images when missing (both idempotent). */
export function prepareEngine(): void {
  execFileSync("bash", [path.join(REPO_ROOT, "scripts/ensure-dockerd.sh")], { stdio: "inherit" });
  execFileSync("bash", [path.join(REPO_ROOT, "images/build.sh")], { stdio: "inherit" });
  removeLeftoverTestContainers();
}

/**
 * Containers of test stacks that an interrupted run left (they restart with the engine): each suite removes
 * its own stack's first, but a leftover of another still holds a published port the next suite is given.
 * Also the off-host, database and S3 test servers and their data: named per test process, a later run (other port bases)
 * would never reuse and so never remove them. Only test containers (names starting with `e2e-`), never
 * anything else on the engine.
 */
function removeLeftoverTestContainers(): void {
  const list = (args: string[]) =>
    execFileSync("docker", args, { encoding: "utf8" }).split("\n").filter(Boolean);
  const ids = [
    ...list(["ps", "-aq", "--filter", "label=edms.stack", "--filter", "name=^e2e-"]),
    ...list(["ps", "-aq", "--filter", `label=edms.role=${OFFSITE_ROLE}`, "--filter", "name=^e2e-"]),
    ...list(["ps", "-aq", "--filter", `label=edms.role=${EXTERNAL_ROLE}`]),
    ...list(["ps", "-aq", "--filter", `label=edms.role=${S3_ROLE}`]),
  ];
  if (ids.length) {
    execFileSync("docker", ["rm", "-f", "-v", ...ids], { stdio: "ignore" });
  }
  const volumes = [OFFSITE_DATA_PREFIX, EXTERNAL_PREFIX, S3_PREFIX].flatMap((prefix) =>
    list(["volume", "ls", "-q", "--filter", `name=^${prefix}`]),
  );
  if (volumes.length) {
    execFileSync("docker", ["volume", "rm", "-f", ...volumes], { stdio: "ignore" });
  }
  const networks = list(["network", "ls", "-q", "--filter", `label=edms.role=${EXTERNAL_ROLE}`]);
  if (networks.length) {
    execFileSync("docker", ["network", "rm", ...networks], { stdio: "ignore" });
  }
}

/**
 * `docker run` of a PostgreSQL of a test's own, as an operator would start one by hand: no network, trust
 * auth inside, user and database `edms`. Wait for it with `waitForScratch` (ops/backup/scratchServer.ts).
 */
export function scratchPostgresArgs(name: string, extra: readonly string[] = []): string[] {
  return [
    "run",
    "-d",
    "--name",
    name,
    "--network",
    "none",
    ...extra,
    ...["-e", "POSTGRES_USER=edms", "-e", "POSTGRES_DB=edms"],
    ...["-e", "POSTGRES_HOST_AUTH_METHOD=trust"],
    "edms-test/postgres:15",
  ];
}

/**
 * Environment for edms-ops commands that run `pulumi` themselves (rollback): the tests' stand-in CLI
 * (tests/harness/bin/pulumi, which applies through the same applier and state as `TestStack.up`), named by
 * `EDMS_PULUMI`, which wins over the pinned `pulumi` package in node_modules (model/pulumiCli.ts), and first on
 * PATH for anything the stand-in itself starts.
 */
export const WITH_PULUMI = {
  EDMS_PULUMI: path.join(REPO_ROOT, "tests/harness/bin/pulumi"),
  PATH: `${path.join(REPO_ROOT, "tests/harness/bin")}${path.delimiter}${process.env.PATH}`,
};

/**
 * Without WITH_PULUMI, edms-ops runs as on a machine without the Pulumi CLI: a path that does not exist, so
 * the pinned `pulumi` package in node_modules never downloads (and runs) a real CLI from a test.
 */
const NO_PULUMI = { EDMS_PULUMI: path.join(REPO_ROOT, "tests/harness/bin/no-pulumi-here") };

export interface OpsResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function ops(args: string[], env: Record<string, string> = {}): Promise<OpsResult> {
  return new Promise((resolve) => {
    const child = spawn(
      "node",
      [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), ...args, "--project-dir", PROJECT_DIR],
      {
        env: { ...process.env, EDMS_SETTINGS_JSON: "", ...NO_PULUMI, ...env },
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** Starts an edms-ops command and SIGKILLs it after `ms` (a crash, an OOM kill, a power cut of the CLI). */
export function opsKilledAfter(
  args: string[],
  ms: number,
): Promise<{ signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const child = spawn(
      "node",
      [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), ...args, "--project-dir", PROJECT_DIR],
      {
        env: { ...process.env, EDMS_SETTINGS_JSON: "", ...NO_PULUMI },
        stdio: "ignore",
      },
    );
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    child.on("close", (_code, signal) => {
      clearTimeout(timer);
      resolve({ signal });
    });
  });
}

/** Starts an edms-ops command and SIGKILLs it `after` ms after its progress (stderr) matches `pattern`. */
export function opsKilledWhen(
  args: string[],
  pattern: RegExp,
  after = 0,
): Promise<{ signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      "node",
      [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), ...args, "--project-dir", PROJECT_DIR],
      { env: { ...process.env, EDMS_SETTINGS_JSON: "", ...NO_PULUMI } },
    );
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    const kill = () => child.kill("SIGKILL");
    child.stdout.resume();
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!timer && pattern.test(stderr)) {
        timer = setTimeout(kill, after);
      }
    });
    child.on("close", (_code, signal) => {
      clearTimeout(timer);
      resolve({ signal, stderr });
    });
  });
}

/** Starts a long-running edms-ops command (a scheduler loop); `stop()` sends SIGTERM and waits for its end. */
export function opsInBackground(args: string[]): { stop: () => Promise<string> } {
  const child = spawn(
    "node",
    [path.join(REPO_ROOT, "ops/bin/edms-ops.js"), ...args, "--project-dir", PROJECT_DIR],
    { env: { ...process.env, EDMS_SETTINGS_JSON: "", ...NO_PULUMI } },
  );
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return {
    stop: async () => {
      child.kill("SIGTERM");
      await closed;
      return output;
    },
  };
}

/**
 * Every row of the data tables, as `count:md5` per table, through any psql: the stack's own server or a copy
 * restored elsewhere (tests/e2e/export.test.ts) compare equal only when every row is.
 */
export async function tablesFingerprint(
  psql: (sql: string) => Promise<string>,
): Promise<Record<string, string>> {
  const tables: Record<string, string> = {
    auth_user: "id, username, password, email, is_superuser, date_joined",
    auth_group: "id, name",
    auth_user_groups: "id, user_id, group_id",
    documents_document: "id, title, owner_id, file, checksum, uploaded_at, processed_at",
    systemsettings_systemsetting: "id, key, value",
  };
  const result: Record<string, string> = {};
  for (const [table, columns] of Object.entries(tables)) {
    result[table] = await psql(
      `SELECT count(*) || ':' || coalesce(md5(string_agg(row(${columns})::text, '|' ORDER BY id)), '-') FROM ${table};`,
    );
  }
  return result;
}

/** tests/harness/parallel.ts gives each file running beside others a range of its own. */
let nextPort = Number(process.env.EDMS_TEST_PORT_BASE) || 18100;
/** The hooks an update of a production stack runs, in order (bootstrap is keyed on the postgres volume). */
export const PRODUCTION_UPDATE_HOOKS = [
  "preDeployBackup",
  "preDeployDrill",
  "migrate",
  "healthGate",
  "recordDeployment",
];

/** Debian with trixie's restic 0.18 and rclone: the harness's own restic calls and the off-host server. */
export const BACKUP_IMAGE = "edms-test/backup:restic-0.18";
/**
 * What the stacks run as `edms:backup.image`: restic 0.18 under busybox, the userland of the official
 * restic/restic image real hosts run, so every script edms-ops sends there runs on busybox in the tests.
 */
export const STACK_BACKUP_IMAGE = "edms-test/backup:restic-0.18-busybox";
/** node >= 20 and a docker CLI, built offline by images/build.sh: the scheduler image's bases in tests. */
export const SCHEDULER_BASE = "edms-test/scheduler-base:node20";

/** The host name production test stacks answer to (`edms:django.allowedHosts`). */
export const TEST_HOST = "edms.test";

/** A stack of the tests' own: its own prefix, port and stack file in PROJECT_DIR. */
export class TestStack {
  readonly prefix: string;
  readonly port: number;
  config: Record<string, unknown>;

  constructor(
    readonly name: string,
    environment: "dev" | "staging" | "production",
    extra: Record<string, unknown> = {},
  ) {
    this.prefix = `e2e-${name}`;
    this.port = nextPort++;
    this.config = {
      "edms:environment": environment,
      "edms:version": "1.0.0",
      "edms:namePrefix": this.prefix,
      "edms:httpPort": this.port,
      "edms:postgresImage": "edms-test/postgres:15",
      "edms:redisImage": "edms-test/redis:7",
      // These scenarios keep the fixed-name web they were written for; tests/e2e/proxy.test.ts turns it on.
      "edms:proxy": { enabled: false },
      // Production serves HTTPS only (model/config/https.ts). Here TLS "ends upstream": the port binds to
      // 127.0.0.1, where this machine reaches it; edms-ops' probes send TEST_HOST. proxy.test.ts covers TLS
      // at the proxy.
      ...(environment === "production"
        ? { "edms:tlsUpstream": true, "edms:django": { allowedHosts: [TEST_HOST] } }
        : {}),
      ...extra,
    };
    this.write();
  }

  write(): void {
    // The offline restic image and scheduler bases, unless a test sets its own: real hosts default to
    // restic/restic and node:20-bookworm-slim. A scheduled backup firing at whatever time
    // the suite runs would change what scenarios count, so the schedule is off, or yearly on production
    // (where off is refused), unless a test sets one (tests/e2e/schedule.test.ts).
    const backup = {
      image: STACK_BACKUP_IMAGE,
      schedulerImage: SCHEDULER_BASE,
      schedule: this.config["edms:environment"] === "production" ? "@yearly" : "off",
      ...((this.config["edms:backup"] as object) ?? {}),
    };
    fs.writeFileSync(
      path.join(PROJECT_DIR, `Pulumi.${this.name}.yaml`),
      YAML.stringify({ config: { ...this.config, "edms:backup": backup } }),
    );
  }

  /** Takes the stack file back in after a command changed it (e.g. `pulumi config set` run by rollback). */
  reload(): void {
    const config = readStackConfig(PROJECT_DIR, this.name);
    this.config = { ...this.config, "edms:version": config["edms:version"] };
  }

  set(key: string, value: unknown): void {
    if (value === undefined) {
      delete this.config[key];
    } else {
      this.config[key] = value;
    }
    this.write();
  }

  /**
   * `pulumi up` of this stack at a release: the stack file is updated as `pulumi config set` would. It
   * refreshes first as the project's Pulumi.yaml says (`refresh: always`) unless `refresh` says otherwise.
   */
  /** The id of the stack's lock container (`<prefix>-ops`, running or not), or "" when there is none. */
  async lockContainer(): Promise<string> {
    return (await docker(["ps", "-aq", "--filter", `name=^${this.prefix}-ops$`])).stdout.trim();
  }

  /**
   * After a killed edms-ops: waits up to 20 s for its lock container to go and returns what is left ("" when
   * gone). It follows edms-ops within a second alone, several beside another test file (parallel.ts).
   */
  async lockLeft(): Promise<string> {
    let left = await this.lockContainer();
    for (let i = 0; i < 80 && left; i += 1) {
      await new Promise((r) => setTimeout(r, 250));
      left = await this.lockContainer();
    }
    return left;
  }

  /** Every line of the stack's schedule.jsonl (starts and runs), oldest first. */
  async scheduleRecords(): Promise<ScheduleRecord[]> {
    const onHost = await hostDataPath(this.backupsVolume);
    const text = onHost
      ? readIfThere(path.join(onHost, "schedule.jsonl"))
      : await this.onVolume(this.backupsVolume, "cat /v/schedule.jsonl 2>/dev/null || true");
    return text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ScheduleRecord);
  }

  async scheduleRuns(): Promise<ScheduleRun[]> {
    return (await this.scheduleRecords()).filter((r): r is ScheduleRun => r.kind === "run");
  }

  /**
   * Polls `probe` every second until `done` holds, or fails after `seconds` with what it saw last and the
   * tail of the scheduler's log (what a scheduled run printed).
   */
  async waitForScheduler<T>(
    what: string,
    seconds: number,
    probe: () => Promise<T>,
    done: (value: T) => boolean,
  ): Promise<T> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const value = await probe();
      if (done(value)) {
        return value;
      }
      if (Date.now() > deadline) {
        const scheduler = `${this.prefix}-scheduler`;
        const logs = await docker(["logs", "--tail", "40", scheduler], { allowFailure: true });
        throw new Error(
          `${what} not seen within ${seconds}s: ${JSON.stringify(value)}\n${logs.stderr}${logs.stdout}`,
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Everything of the stack removed, then a first deploy (of `version`), which must succeed. */
  async freshDeploy(version?: string): Promise<void> {
    await this.destroy();
    const { error } = await this.up(version);
    if (error) {
      throw new Error(`first deploy of ${this.name} failed: ${error.message}`);
    }
  }

  async up(version?: string, options: { refresh?: boolean } = {}): Promise<ApplyResult> {
    if (version) {
      this.set("edms:version", version);
    }
    return applier.apply(this.name, options);
  }

  ops(command: string[], env?: Record<string, string>): Promise<OpsResult> {
    return ops([...command, "--stack", this.name], env);
  }

  /** Docker names as the program derives them (model/settings.ts), at the configured data generation. */
  get names(): ResourceNames {
    return resourceNames(this.prefix, Number(this.config["edms:dataGeneration"] ?? 0));
  }

  container(role: "postgres" | "redis" | "web" | "worker"): string {
    return this.names[`${role}Container`];
  }

  /** `docker ps` lines (`format`, default the names) of the stack's containers: running ones, or `all`. */
  async containers(
    options: { all?: boolean; role?: string; format?: string } = {},
  ): Promise<string[]> {
    const listed = await docker([
      "ps",
      ...(options.all ? ["-a"] : []),
      "--filter",
      `label=edms.stack=${this.name}`,
      ...(options.role ? ["--filter", `label=edms.role=${options.role}`] : []),
      "--format",
      options.format ?? "{{.Names}}",
    ]);
    return listed.stdout.split("\n").filter(Boolean);
  }

  /** Starts the stack's postgres container again (after a test stopped it) and waits until it accepts connections. */
  async startPostgres(): Promise<void> {
    await docker(["start", this.container("postgres")]);
    for (let i = 0; i < 60; i += 1) {
      const ready = await docker(["exec", this.container("postgres"), "pg_isready"], {
        allowFailure: true,
      });
      if (ready.code === 0) {
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${this.container("postgres")} did not accept connections within 30 s`);
  }

  async psql(sql: string): Promise<string> {
    // An external database (`edms:database`): through the provider's console, as the stack has no server.
    const external = this.config["edms:database"] as { name?: string } | undefined;
    if (external) {
      return asProvider(sql, external.name ?? "edms");
    }
    return (
      await docker(
        ["exec", "-i", this.container("postgres"), "psql", "-U", "edms", "-d", "edms", "-XAtq"],
        { input: sql },
      )
    ).stdout.trim();
  }

  /** The documents app's latest applied migration and whether its table has 2.0.0's `slug` column. */
  async documentsSchema(): Promise<{ migration: string; slug: boolean }> {
    const [migration, slug] = (
      await this.psql(
        "SELECT max(name) FROM django_migrations WHERE app = 'documents';\n" +
          "SELECT count(*) FROM information_schema.columns WHERE table_name = 'documents_document' AND column_name = 'slug';",
      )
    ).split("\n");
    return { migration, slug: slug === "1" };
  }

  /** Python in the web container's Django shell; code goes in on stdin, never argv. */
  async django(code: string): Promise<string> {
    return (
      await docker(["exec", "-i", this.container("web"), "python3", "manage.py", "shell"], {
        input: code,
      })
    ).stdout.trim();
  }

  async containerId(role: "web" | "worker"): Promise<string> {
    return (await docker(["inspect", "-f", "{{.Id}}", this.container(role)])).stdout.trim();
  }

  /** Users, documents (with media files), settings, and one document processed by the celery worker. */
  async seed(tag: string, documents = 3, bytes = 2048): Promise<void> {
    await this.django(`
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from documents.models import Document
from documents.tasks import compute_checksum
from systemsettings.models import SystemSetting
import os
owner, _ = User.objects.get_or_create(username="clerk-${tag}", defaults={"email": "clerk@example.org"})
owner.set_password("clerk-pass-${tag}"); owner.save()
for i in range(${documents}):
    d = Document(title="Contract ${tag} %d" % i, owner=owner)
    d.file.save("contract-${tag}-%d.bin" % i, ContentFile(os.urandom(${bytes})), save=True)
SystemSetting.objects.update_or_create(key="seeded-${tag}", defaults={"value": "yes"})
SystemSetting.objects.filter(key="site_name").update(value="Operator-edited ${tag}")
last = Document.objects.latest("id")
print(compute_checksum.delay(last.id).get(timeout=60))
`);
  }

  /** Every row of the data tables (by content hash) and every media file (by sha256). */
  async fingerprint(options: { media?: boolean } = {}): Promise<Record<string, string>> {
    const result = await tablesFingerprint((sql) => this.psql(sql));
    if (options.media === false) {
      return result;
    }
    const media = await docker([
      "exec",
      this.container("web"),
      "sh",
      "-c",
      "cd /srv/media && find . -path './.health-*' -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum",
    ]);
    result.media = media.stdout.trim();
    return result;
  }

  /**
   * The database alone, from the postgres container (web and worker may be stopped): the data tables, the
   * migration state, the documents table's columns, large objects and every relation outside public.
   */
  async dbFingerprint(): Promise<Record<string, string>> {
    const tables = await this.fingerprint({ media: false });
    const extra = await this.psql(
      [
        "SELECT string_agg(app || ':' || name, ',' ORDER BY app, name) FROM django_migrations;",
        "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'documents_document';",
        "SELECT count(*) FROM pg_largeobject_metadata;",
        "SELECT coalesce(string_agg(n.nspname || '.' || c.relname || ':' || c.relkind, ',' ORDER BY 1), '-') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('public', 'pg_catalog', 'information_schema', 'pg_toast');",
      ].join("\n"),
    );
    const [migrations, columns, largeObjects, relations] = extra.split("\n");
    return { ...tables, migrations, columns, largeObjects, relations };
  }

  /** Every media file by sha256, read from the volume (web may be stopped). */
  async mediaFingerprint(): Promise<string> {
    return this.onVolume(
      this.mediaVolume,
      "cd /v && find . -path './.health-*' -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum",
    );
  }

  /**
   * Writes media an import or an old archive brings and Django would not make: a newline and a tab in a name, a
   * backslash, names that look like options, an upload named like the health probe's files but deeper down.
   * Returns their paths relative to the media root.
   */
  async writeOddMedia(): Promise<string[]> {
    await this.onVolume(
      this.mediaVolume,
      [
        "mkdir -p '/v/odd/-rf' /v/docs",
        "printf 'one' > \"$(printf '/v/odd/two\\nlines\\t.pdf')\"",
        "printf 'two' > '/v/odd/back\\slash'",
        "printf 'three' > '/v/odd/-rf/--help'",
        "printf 'four' > /v/docs/.health-insurance.pdf",
      ].join(" && "),
    );
    return [
      "docs/.health-insurance.pdf",
      "odd/-rf/--help",
      "odd/back\\slash",
      "odd/two\nlines\t.pdf",
    ];
  }

  /** A shell in a throwaway container with one of the stack's volumes at /v. */
  async onVolume(volume: string, script: string): Promise<string> {
    return onVolumes({ [volume]: "/v" }, script);
  }

  /** restic against the stack's local repository, with the key the stack keeps on the host. */
  async restic(args: string[]): Promise<string> {
    const result = await docker(
      dockerRunArgs({
        image: BACKUP_IMAGE,
        args: [
          "--no-cache",
          "-r",
          "/backups/restic",
          "--password-file",
          "/backups/.keys/restic-password",
          ...args,
        ],
        remove: true,
        network: "none",
        mounts: [{ volume: this.backupsVolume, path: "/backups" }],
      }),
    );
    return result.stdout.trim();
  }

  get backupsVolume(): string {
    return this.names.backupsVolume;
  }

  get mediaVolume(): string {
    const generation = Number(this.config["edms:dataGeneration"] ?? 0);
    return `${this.prefix}_media_files${generation > 0 ? `_g${generation}` : ""}`;
  }

  async backupIds(): Promise<string[]> {
    const listed = await this.ops(["backups", "list", "--json"]);
    if (listed.code !== 0) {
      throw new Error(listed.stderr);
    }
    return (JSON.parse(listed.stdout).complete as { id: string }[]).map((m) => m.id);
  }

  async volumes(): Promise<string[]> {
    return (
      await docker(["volume", "ls", "-q", "--filter", `label=edms.stack=${this.name}`])
    ).stdout
      .split("\n")
      .filter(Boolean)
      .sort();
  }

  /**
   * Removes everything the stack made on the engine (what `pulumi destroy` would, protection aside).
   * `keepState`: the engine is emptied but the Pulumi state (random secrets, hook triggers) stays, as
   * when a host is lost.
   */
  async destroy(options: { keepState?: boolean } = {}): Promise<void> {
    const ids = (await docker(["ps", "-aq", "--filter", `label=edms.stack=${this.name}`])).stdout
      .split("\n")
      .filter(Boolean);
    if (ids.length) {
      // A background off-host copy may be removing itself (--rm) at this moment: then try once more.
      const removed = await docker(["rm", "-f", "-v", ...ids], { allowFailure: true });
      if (removed.code !== 0 && !/already in progress|No such container/.test(removed.stderr)) {
        await docker(["rm", "-f", "-v", ...ids]);
      }
      await new Promise((r) => setTimeout(r, removed.code === 0 ? 0 : 1000));
    }
    const volumes = await this.volumes();
    if (volumes.length) {
      await docker(["volume", "rm", "-f", ...volumes]);
    }
    const { frontNetwork, dataNetwork, databaseNetwork, mediaNetwork } = this.names;
    await docker(["network", "rm", frontNetwork, dataNetwork, databaseNetwork, mediaNetwork], {
      allowFailure: true,
    });
    if (!options.keepState) {
      applier.forget(this.name);
    }
  }
}

/**
 * The off-host repository server of the tests: `rclone serve restic --append-only` (a real restic REST
 * backend that refuses every delete but of lock files, as the Docker host's credentials should) in a
 * container on the default bridge, with basic auth, reached by the backup containers at its bridge IP.
 * A second server with full rights serves the same data (a volume): what `backups prune --offsite` is
 * given on a trusted machine.
 */
// Per test process: files that run side by side (tests/harness/parallel.ts) each start and stop their own.
const OFFSITE_TAG = process.env.EDMS_TEST_PORT_BASE ?? "serial";
const OFFSITE_SERVER = `e2e-offsite-server-${OFFSITE_TAG}`;
const OFFSITE_FULL_SERVER = `e2e-offsite-full-${OFFSITE_TAG}`;
const OFFSITE_DATA = `${OFFSITE_DATA_PREFIX}${OFFSITE_TAG}`;
export const OFFSITE_USER = "offsite";
export const OFFSITE_PASS = "rest-pass-5b1f0e9d7c";

export async function startOffsiteServer(): Promise<void> {
  await stopOffsiteServer();
  for (const [name, appendOnly] of [
    [OFFSITE_SERVER, true],
    [OFFSITE_FULL_SERVER, false],
  ] as const) {
    await docker(
      dockerRunArgs({
        image: BACKUP_IMAGE,
        name,
        detach: true,
        labels: { "edms.role": OFFSITE_ROLE },
        entrypoint: "rclone",
        mounts: [{ volume: OFFSITE_DATA, path: "/data" }],
        args: [
          "serve",
          "restic",
          "/data",
          "--addr",
          ":8080",
          "--user",
          OFFSITE_USER,
          "--pass",
          OFFSITE_PASS,
          ...(appendOnly ? ["--append-only"] : []),
        ],
      }),
    );
  }
}

export async function stopOffsiteServer(): Promise<void> {
  await docker(["rm", "-f", OFFSITE_SERVER, OFFSITE_FULL_SERVER], { allowFailure: true });
  await docker(["volume", "rm", "-f", OFFSITE_DATA], { allowFailure: true });
}

/** The URL of `path` on the append-only server, or with `full` on the one that may delete. */
export async function offsiteRepository(path: string, full = false): Promise<string> {
  const ip = (
    await docker([
      "inspect",
      "-f",
      "{{.NetworkSettings.IPAddress}}",
      full ? OFFSITE_FULL_SERVER : OFFSITE_SERVER,
    ])
  ).stdout.trim();
  return `rest:http://${OFFSITE_USER}:${OFFSITE_PASS}@${ip}:8080/${path}/`;
}

/** What an operator passes on a new host: the Pulumi secrets, nothing from the lost one. */
export function offsiteEnv(stack: TestStack): Record<string, string> {
  const backup = stack.config["edms:backup"] as { offsite: { repository: { secure: string } } };
  const password = applier.state(stack.name).random["edms-secrets-backup-password"];
  return {
    EDMS_RESTIC_PASSWORD: password,
    EDMS_OFFSITE_REPOSITORY: backup.offsite.repository.secure,
    EDMS_OFFSITE_ENV: "{}",
  };
}

/**
 * Where a plain volume's files are on this host, when this process can read them there (a local engine, run
 * as root, as in CI); null otherwise, and for a volume with driver options (a bind-mounted tmpfs is mounted
 * at that path only while a container uses it). Polls read there: a throwaway container costs the host
 * ~0.75 s of CPU (10 `docker run --rm` of a `cat`: 7.4 s), taken from the test file on the other lane.
 */
async function hostDataPath(volume: string): Promise<string | null> {
  const inspected = await docker(
    ["volume", "inspect", "-f", "{{.Driver}} {{len .Options}} {{.Mountpoint}}", volume],
    { allowFailure: true },
  );
  const [driver, options, ...rest] = inspected.stdout.trim().split(" ");
  const mountpoint = rest.join(" "); // Docker's data root may have a space in its name
  if (inspected.code !== 0 || driver !== "local" || options !== "0" || !mountpoint) {
    return null;
  }
  try {
    fs.accessSync(mountpoint, fs.constants.R_OK | fs.constants.X_OK);
    return mountpoint;
  } catch {
    return null;
  }
}

function readIfThere(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return "";
    }
    throw err;
  }
}

/**
 * A root shell in a throwaway container with the given volumes (or host folders) mounted, e.g.
 * `{"<prefix>_backups": "/backups"}`; the script's stdout, trimmed. Fails on a non-zero exit.
 */
export async function onVolumes(
  mounts: Record<string, string>,
  script: string,
  input?: string | NodeJS.ReadableStream,
): Promise<string> {
  const result = await docker(
    dockerRunArgs({
      image: "edms-test/postgres:15",
      args: ["-euc", script],
      remove: true,
      stdin: true,
      user: "0",
      entrypoint: "sh",
      mounts: Object.entries(mounts).map(([volume, path]) => ({ volume, path })),
    }),
    input === undefined ? {} : { input: input as never },
  );
  return result.stdout.trim();
}

/**
 * A small filesystem behind one of a stack's volumes, for full-disk tests: a host tmpfs of `size` (e.g. "6m")
 * bind-mounted by the local driver (a `type=tmpfs` volume would give every container its own empty tmpfs).
 * Create it before the first deploy; `remove()` after the stack is destroyed.
 */
export class SmallDisk {
  /** The host directory the small filesystem is mounted on. */
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-small-disk-"));

  constructor(
    private readonly stack: TestStack,
    readonly volume: string,
    private readonly size: string,
  ) {}

  async create(): Promise<void> {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${this.size}`, "tmpfs", this.dir]);
    await docker([
      "volume",
      "create",
      "--opt",
      "type=none",
      "--opt",
      "o=bind",
      "--opt",
      `device=${this.dir}`,
      "--label",
      `edms.stack=${this.stack.name}`,
      this.volume,
    ]);
  }

  remove(): void {
    execFileSync("umount", [this.dir]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
