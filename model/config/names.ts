/** Fixed names of everything the stack owns on the Docker host; edms-ops finds resources by them. */
export interface ResourceNames {
  readonly postgresVolume: string;
  readonly redisVolume: string;
  readonly mediaVolume: string;
  readonly backupsVolume: string;
  /**
   * The proxy and web: the one network with a gateway, where web publishes `edms:httpPort` when the
   * proxy is off. Nothing on it reaches PostgreSQL or Redis.
   */
  readonly frontNetwork: string;
  /**
   * `internal` (no gateway, nothing published): web, worker, PostgreSQL, Redis and edms-ops' one-off
   * Django containers. The proxy is never on it.
   */
  readonly dataNetwork: string;
  /**
   * With `edms:database` and no `database.network`: a bridge with a gateway that web, worker and edms-ops'
   * clients reach the external server through. Nothing else is on it.
   */
  readonly databaseNetwork: string;
  /**
   * With `edms:database`: edms-ops' credentials for it (pgpass, the server's CA, the password), root-only,
   * written by `backups init` and mounted read-only into its client containers.
   */
  readonly databaseCredentialsVolume: string;
  /**
   * With `edms:media` and no `media.network`: a bridge with a gateway that web, worker and edms-ops' rclone
   * reach the S3 endpoint through.
   */
  readonly mediaNetwork: string;
  /**
   * With `edms:media`: edms-ops' rclone config for the bucket (its keys), root-only, written by `backups
   * init` and mounted read-only into the rclone containers. The media volume is then the bucket's mirror.
   */
  readonly mediaCredentialsVolume: string;
  readonly postgresContainer: string;
  readonly redisContainer: string;
  readonly webContainer: string;
  readonly workerContainer: string;
  readonly proxyContainer: string;
  /** Runs `edms-ops scheduler`: the scheduled backups (`edms:backup.schedule`). */
  readonly schedulerContainer: string;
}

export function resourceNames(namePrefix: string, dataGeneration: number): ResourceNames {
  // A generation bump gives the data volumes new names, so the next deploy starts on empty ones. The
  // backups volume deliberately keeps its name: it holds the undo of that fresh start.
  const gen = dataGeneration > 0 ? `_g${dataGeneration}` : "";
  return {
    postgresVolume: `${namePrefix}_postgres_data${gen}`,
    redisVolume: `${namePrefix}_redis_data${gen}`,
    mediaVolume: `${namePrefix}_media_files${gen}`,
    backupsVolume: `${namePrefix}_backups`,
    // Not `<prefix>-internal`, the one flat network of earlier releases: a network keeping its name
    // while becoming `internal` would be replaced create-first, which Docker refuses for a taken name.
    frontNetwork: `${namePrefix}-front`,
    dataNetwork: `${namePrefix}-data`,
    databaseNetwork: `${namePrefix}-database`,
    databaseCredentialsVolume: `${namePrefix}_db_credentials`,
    mediaNetwork: `${namePrefix}-media`,
    mediaCredentialsVolume: `${namePrefix}_media_credentials`,
    postgresContainer: `${namePrefix}-postgres`,
    redisContainer: `${namePrefix}-redis`,
    webContainer: `${namePrefix}-web`,
    workerContainer: `${namePrefix}-worker`,
    proxyContainer: `${namePrefix}-proxy`,
    schedulerContainer: `${namePrefix}-scheduler`,
  };
}
