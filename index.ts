import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Edms, loadConfig, refuseHostVolumeProblems } from "./components";
import { unpinnedWarning } from "./model/images";

const config = loadConfig();
const { settings } = config;
// Before any resource is declared: a config that would make the engine replace, and so delete, the
// stack's data volumes stops here (another prefix, another stack's prefix, another environment, a volume
// without the stack's labels under one of its names).
refuseHostVolumeProblems(settings);

// Images pulled by tag: production's policy pack refuses them (production-images-by-digest); elsewhere
// they are worth one warning.
const unpinned = settings.environment === "production" ? undefined : unpinnedWarning(settings);
if (unpinned) {
  void pulumi.log.warn(unpinned);
}
if (settings.backup.dockerCliImage !== undefined) {
  void pulumi.log.warn(
    "`edms:backup.dockerCliImage` is no longer used: the scheduler has no docker CLI and no engine socket. Remove it with `pulumi config rm --path edms:backup.dockerCliImage`.",
  );
}

// An explicit provider so `docker:host` (e.g. ssh://deploy@server) is visibly the one place the target is
// chosen; the edms-ops hooks get the same value as DOCKER_HOST.
const dockerProvider = new docker.Provider("docker", { host: settings.dockerHost });

const edms = new Edms(
  "edms",
  {
    settings,
    superuserPassword: config.superuserPassword,
    backupSecrets: config.backupSecrets,
    tlsPem: config.tlsPem,
    alertTargets: config.alertTargets,
    externalDatabase: config.externalDatabase,
    bucketMedia: config.bucketMedia,
  },
  { providers: { docker: dockerProvider } },
);

export const environment = settings.environment;
export const version = settings.version;
export const url = edms.url;
export const volumes = {
  // None with an external database (`edms:database`): the program never holds its data.
  ...(settings.database ? {} : { postgres: settings.names.postgresVolume }),
  media: settings.names.mediaVolume,
  backups: settings.names.backupsVolume,
  redis: settings.names.redisVolume,
};
export const superuser = settings.bootstrap.superuser;
export const superuserPassword = pulumi.secret(edms.superuserPassword);
// The backup repositories' password: with the stack file and the off-host repository, all that disaster
// recovery on a new host needs (`EDMS_RESTIC_PASSWORD=$(pulumi stack output backupPassword --show-secrets)`).
export const backupPassword = pulumi.secret(edms.backupPassword);
