import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { HOOK_CONTRACTS, HOOK_WAIT_SECONDS, WaitInput } from "../model/hooks";
import { publishedUrl } from "../model/https";
import { BackupSecrets, Settings } from "../model/settings";
import { DjangoService } from "./djangoService";
import { EdmsArgs, Foundation, foundation } from "./foundation";
import { handedBackupId, HookSecrets, opsHook } from "./hooks";
import { containerReplacement } from "../model/protection";
import { EdmsProxy } from "./proxy";
import { Scheduler } from "./scheduler";
import { scheduleEnabled } from "../model/schedule";

export type { EdmsArgs } from "./foundation";
/**
 * The whole EDMS on one Docker host, in the order the design's deploy graph fixes:
 *
 *   secrets, networks (front, data), volumes → (freshStartBackup) → postgres, redis → backupInit → preDeployBackup
 *     → preDeployDrill → migrate → bootstrap → web, worker → proxyTakeover → proxy → proxySwitch → healthGate
 *     → recordDeployment
 *   backupInit, bootstrap → scheduler (with `edms:backup.schedule`: scheduled backups from the Docker host)
 *
 * A failing hook stops `pulumi up` there: nothing after it is replaced, so the old web/worker keep serving.
 * With the proxy (`edms:proxy.enabled`, the default) the new release's web starts beside the old one and
 * proxySwitch moves traffic once it is healthy; the old web goes when the engine deletes resources the program
 * no longer declares, after the update has succeeded. Without it, web is replaced delete-first as before.
 */
export class Edms extends pulumi.ComponentResource {
  readonly url: pulumi.Output<string>;
  readonly superuserPassword: pulumi.Output<string>;
  readonly backupPassword: pulumi.Output<string>;
  readonly hooks: Record<string, command.local.Command>;
  readonly scheduler?: Scheduler;

  constructor(name: string, args: EdmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:Edms", name, {}, opts);
    const base = foundation(name, args, this);
    const data = dataHooks(base, args);
    const services = releaseServices(base, data.bootstrap, args);
    const gates = releaseGates(base, services, data.preDeployBackup);
    // Its backups need the repository and its keys on the host, and on a first deploy the bootstrap done: a
    // run between migrate and bootstrap would back up a half-made database as real data (not `bootstrap`).
    this.scheduler = scheduleEnabled(args.settings.backup.schedule)
      ? new Scheduler(
          `${name}-scheduler`,
          {
            settings: args.settings,
            after: [data.backupInit, data.bootstrap],
            alertTargets: args.alertTargets,
            backupDbPassword: base.secrets.backupDbPassword,
            dataNetwork: base.network.dataName,
            databaseNetwork: base.network.databaseName,
            databaseCa: base.databaseCa,
            mediaNetwork: base.network.mediaName,
          },
          base.child,
        )
      : undefined;
    this.hooks = {
      ...(base.freshStartBackup ? { freshStartBackup: base.freshStartBackup } : {}),
      backupInit: data.backupInit,
      migrate: data.migrate,
      bootstrap: data.bootstrap,
      healthGate: gates.healthGate,
      recordDeployment: gates.recordDeployment,
      ...(services.proxySwitch ? { proxySwitch: services.proxySwitch } : {}),
      ...(services.proxyTakeover ? { proxyTakeover: services.proxyTakeover } : {}),
      ...(data.preDeployBackup ? { preDeployBackup: data.preDeployBackup } : {}),
      ...(data.preDeployDrill ? { preDeployDrill: data.preDeployDrill } : {}),
    };
    const { settings } = args;
    this.url = pulumi.output(publishedUrl(settings));
    this.superuserPassword = base.secrets.superuserPassword;
    this.backupPassword = base.secrets.backupPassword;
    this.registerOutputs({ url: this.url });
  }
}

/** backupInit → preDeployBackup → migrate → bootstrap: everything that touches the data before new code runs. */
function dataHooks(base: Foundation, args: EdmsArgs) {
  const backups = backupHooks(base, args);
  const { preDeployDrill, preDeployBackup, backupInit } = backups;
  return { ...backups, ...schemaHooks(base, preDeployDrill ?? preDeployBackup ?? backupInit) };
}

/**
 * What `backups init` runs again for, and the secrets it writes onto the host. The restic repository's key
 * (and the off-host credentials) reach the host before any backup needs them; keyed on the postgres
 * container too, so a host rebuilt from scratch gets them again. With an external database it also writes
 * edms-ops' credentials volume for it (again on a new host, which a new redis container says in `database`);
 * with bucket media, rclone's config with the key, and the prefix's claim (again for another bucket, prefix
 * or endpoint).
 */
function backupInitInputs(base: Foundation, args: EdmsArgs) {
  const { settings, secrets, database } = base;
  const external = args.externalDatabase;
  const bucket = args.bucketMedia;
  const media = settings.media;
  return {
    settings,
    triggers: [
      secrets.backupPassword,
      args.backupSecrets ?? null,
      ...database,
      ...(external ? [external.password, external.caCertificate ?? null] : []),
      ...(bucket && media
        ? [
            bucket.secretKey,
            media.bucket,
            media.prefix ?? null,
            media.endpoint,
            bucket.caCertificate ?? null,
          ]
        : []),
    ],
    secrets: {
      ...backupHookSecrets(secrets.backupPassword, args.backupSecrets),
      ...(external
        ? {
            EDMS_DATABASE_PASSWORD: external.password,
            ...(external.caCertificate ? { EDMS_DATABASE_CA: external.caCertificate } : {}),
          }
        : {}),
      ...(bucket
        ? {
            EDMS_MEDIA_SECRET_KEY: bucket.secretKey,
            ...(bucket.caCertificate ? { EDMS_MEDIA_CA: bucket.caCertificate } : {}),
          }
        : {}),
    },
  };
}

/** backupInit → preDeployBackup → preDeployDrill: a proven backup of the data before migrate touches it. */
function backupHooks(base: Foundation, args: EdmsArgs) {
  const { settings, child, release, datastores } = base;
  const backupInit = opsHook(HOOK_CONTRACTS.backupInit, backupInitInputs(base, args), {
    ...child,
    dependsOn: datastores,
  });
  // Runs against the still-running old release, before anything of the new one touches the data.
  const preDeployBackup = settings.backup.beforeDeploy
    ? opsHook(
        HOOK_CONTRACTS.preDeployBackup,
        { settings, input: { version: settings.version }, triggers: release },
        { ...child, dependsOn: [...datastores, backupInit] },
      )
    : undefined;
  // A backup that does not restore stops the deploy here, while the old release still serves: the drill
  // restores it into scratch space and runs its own release's checks before anything is migrated. It is
  // handed the backup's id rather than looking for it, so it drills exactly the backup just taken.
  const preDeployDrill =
    preDeployBackup && settings.backup.drillBeforeDeploy
      ? opsHook(
          HOOK_CONTRACTS.preDeployDrill,
          { settings, input: { backupId: handedBackupId(preDeployBackup) }, triggers: release },
          { ...child, dependsOn: [preDeployBackup] },
        )
      : undefined;
  return { backupInit, preDeployBackup, preDeployDrill };
}

/** migrate → bootstrap, after `after` (the last backup hook): the new release's schema and first data. */
function schemaHooks(base: Foundation, after: command.local.Command) {
  const { settings, child, secrets, release, database, datastores } = base;
  // It also gives the application and backup roles their logins and rights (ops/database/appRole.ts): run
  // again when a role's password is new (a stack deployed before the role existed, or the password replaced).
  const migrate = opsHook(
    HOOK_CONTRACTS.migrate,
    {
      settings,
      triggers: [...release, ...database, secrets.appDbPassword, secrets.backupDbPassword],
      secrets: {
        EDMS_POSTGRES_PASSWORD: base.ownerPassword,
        EDMS_DJANGO_SECRET_KEY: secrets.djangoSecretKey,
        EDMS_REDIS_PASSWORD: secrets.redisPassword,
        EDMS_APP_DB_PASSWORD: secrets.appDbPassword,
        EDMS_BACKUP_DB_PASSWORD: secrets.backupDbPassword,
      },
    },
    { ...child, dependsOn: [...datastores, base.backendImage, after] },
  );
  // Keyed on the database: a new (empty) one gets its superuser and fixtures, once.
  const bootstrap = opsHook(
    HOOK_CONTRACTS.bootstrap,
    {
      settings,
      triggers: database,
      secrets: {
        EDMS_POSTGRES_PASSWORD: base.ownerPassword,
        EDMS_DJANGO_SECRET_KEY: secrets.djangoSecretKey,
        EDMS_REDIS_PASSWORD: secrets.redisPassword,
        EDMS_SUPERUSER_PASSWORD: secrets.superuserPassword,
      },
    },
    { ...child, dependsOn: [migrate] },
  );
  return { migrate, bootstrap };
}

/** The new release's web and worker, and (with the proxy) the takeover of the port and the switch. */
function releaseServices(base: Foundation, bootstrap: command.local.Command, args: EdmsArgs) {
  const { name, settings, child, network, release } = base;
  const withProxy = settings.proxy.enabled;
  const web = releaseService(base, "web", bootstrap);
  const worker = releaseService(base, "worker", bootstrap);
  // A stack deployed without the proxy still has a fixed-name web on the port: it is stopped once the new
  // web is healthy, just before the proxy is created on that port (a no-op on every later update).
  const proxyTakeover = withProxy
    ? opsHook(
        HOOK_CONTRACTS.proxyTakeover,
        { settings, input: healthWait(settings), triggers: [settings.httpPort] },
        { ...child, dependsOn: [web, worker] },
      )
    : undefined;
  const proxy = withProxy
    ? new EdmsProxy(
        `${name}-proxy`,
        {
          settings,
          network: network.frontName,
          tlsPem: args.tlsPem,
          after: proxyTakeover ? [proxyTakeover] : [],
        },
        child,
      )
    : undefined;
  // Keyed on the proxy container too: a replaced proxy starts on the placeholder and must be pointed again.
  const proxySwitch = proxy
    ? opsHook(
        HOOK_CONTRACTS.proxySwitch,
        {
          settings,
          input: healthWait(settings),
          triggers: [...release, web.container.id, proxy.container.id],
        },
        { ...child, dependsOn: [web, worker, proxy] },
      )
    : undefined;
  return { web, worker, proxyTakeover, proxySwitch };
}

/** What the switch and health hooks wait for a new release: `edms:healthWaitSeconds` or the default. */
function healthWait(settings: Settings): WaitInput {
  return { wait: settings.healthWaitSeconds ?? HOOK_WAIT_SECONDS };
}

/** The release's web or worker, started once bootstrap has run. */
function releaseService(
  base: Foundation,
  process: "web" | "worker",
  bootstrap: command.local.Command,
): DjangoService {
  const { name, settings, child, secrets, network, data, backendImage } = base;
  return new DjangoService(
    // Per release: a new URN, so the engine creates it beside the old one instead of replacing it.
    containerReplacement(process, settings.proxy.enabled).perRelease
      ? `${name}-${process}-${settings.version}`
      : `${name}-${process}`,
    {
      settings,
      process,
      image: backendImage.imageId,
      frontNetwork: network.frontName,
      dataNetwork: network.dataName,
      mediaVolume: data.volumes.media.name,
      databaseNetwork: network.databaseName,
      databaseCa: base.databaseCa,
      mediaNetwork: network.mediaName,
      s3Credentials: base.s3Credentials,
      s3Ca: base.s3Ca,
      appDbPassword: secrets.appDbPassword,
      secretKey: secrets.djangoSecretKey,
      redisPassword: secrets.redisPassword,
    },
    { ...child, dependsOn: [bootstrap] },
  );
}

/**
 * healthGate → recordDeployment: the release counts as deployed only once it is healthy. The record is
 * handed the pre-deploy backup's id, so history names the backup this deploy took.
 */
function releaseGates(
  base: Foundation,
  services: ReturnType<typeof releaseServices>,
  preDeployBackup: command.local.Command | undefined,
) {
  const { settings, child, release } = base;
  const { web, worker, proxySwitch } = services;
  const healthGate = opsHook(
    HOOK_CONTRACTS.healthGate,
    {
      settings,
      input: healthWait(settings),
      triggers: [...release, web.container.id, worker.container.id],
    },
    { ...child, dependsOn: [web, worker, ...(proxySwitch ? [proxySwitch] : [])] },
  );
  const recordDeployment = opsHook(
    HOOK_CONTRACTS.recordDeployment,
    {
      settings,
      input: preDeployBackup ? { backupId: handedBackupId(preDeployBackup) } : undefined,
      triggers: [...release, web.container.id],
    },
    { ...child, dependsOn: [healthGate] },
  );
  return { healthGate, recordDeployment };
}

/** What `edms-ops backups init` needs to keep the repository keys on the host; all secret. */
function backupHookSecrets(
  password: pulumi.Output<string>,
  offsite: pulumi.Input<BackupSecrets> | undefined,
): HookSecrets {
  if (offsite === undefined) {
    return { EDMS_RESTIC_PASSWORD: password };
  }
  const resolved = pulumi.secret(pulumi.output(offsite));
  return {
    EDMS_RESTIC_PASSWORD: password,
    EDMS_OFFSITE_REPOSITORY: resolved.apply((o) => o.repository),
    EDMS_OFFSITE_ENV: resolved.apply((o) => JSON.stringify(o.env)),
  };
}
