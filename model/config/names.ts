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
    // while becoming `internal` would be replaced under that name, which Docker refuses create-first and
    // delete-first does only by deleting every container on it first.
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

/** A volume on the Docker host labelled by a stack: its `edms.role`, `edms.stack` and `edms.environment`. */
export interface LabelledVolume {
  readonly name: string;
  readonly role: string;
  readonly stack: string;
  readonly environment: string;
}

/** The data volumes' names as `resourceNames` makes them, any data generation: the prefix is group 1. */
const DATA_VOLUME_NAMES: ReadonlyMap<string, RegExp> = new Map([
  ["postgres", /^([a-z][a-z0-9-]*)_postgres_data(?:_g[0-9]+)?$/],
  ["media", /^([a-z][a-z0-9-]*)_media_files(?:_g[0-9]+)?$/],
  ["backups", /^([a-z][a-z0-9-]*)_backups$/],
]);

/**
 * Why the program must not declare the stack's volumes, from the host's volumes and the labels stacks gave them:
 * its data under another prefix (`movedPrefixProblem`), its prefix naming another stack's data (two stacks
 * with one prefix, or a `pulumi stack rename`), its data volumes labelled with another environment, or a
 * volume without the stack label under a name it declares (`declared`). Docker
 * cannot rename a volume nor change its labels; the provider replaces it, and a replacement under the same
 * name deletes the data the new resource was handed. Empty when none applies.
 */
export function hostVolumeProblems(
  stack: { readonly stack: string; readonly environment: string; readonly namePrefix: string },
  /** The data volumes the program declares (database, media, backups), by name. */
  declared: readonly string[],
  volumes: readonly LabelledVolume[],
): string[] {
  const { environment, namePrefix } = stack;
  const ours = volumes.filter((v) => v.stack === stack.stack);
  const named = volumes.filter((v) => dataPrefix(v) === namePrefix);
  const taken = named.filter((v) => v.stack !== stack.stack && v.stack !== "");
  const relabelled = named.filter((v) => v.stack === stack.stack && v.environment !== environment);
  const unlabelled = volumes.filter((v) => v.stack === "" && declared.includes(v.name));
  return [
    movedPrefixProblem(stack.stack, namePrefix, ours),
    taken.length ? takenProblem(stack.stack, namePrefix, taken) : undefined,
    relabelled.length ? relabelledProblem(stack.stack, environment, relabelled) : undefined,
    unlabelled.length ? unlabelledProblem(stack.stack, unlabelled) : undefined,
  ].filter((p): p is string => p !== undefined);
}

function takenProblem(stack: string, namePrefix: string, taken: readonly LabelledVolume[]): string {
  const owners = [...new Set(taken.map((v) => `\`${v.stack}\``))].join(", ");
  return (
    `\`edms:namePrefix\` \`${namePrefix}\` names volumes of stack ${owners} on this Docker host ` +
    `(${names(taken)}). Docker hands an existing volume to whoever creates its name: stack \`${stack}\` ` +
    `would run on that data, and its \`pulumi destroy\` or \`edms-ops reset\` would delete it once nothing ` +
    `else uses it. Nothing was changed. Give stack \`${stack}\` a prefix of its own; after \`pulumi stack ` +
    `rename\`, rename it back.`
  );
}

function relabelledProblem(
  stack: string,
  environment: string,
  relabelled: readonly LabelledVolume[],
): string {
  const was = [...new Set(relabelled.map((v) => v.environment))];
  const setBack =
    was.length === 1 && was[0]
      ? ` Set it back with \`pulumi config set edms:environment ${was[0]} --stack ${stack}\`.`
      : "";
  return (
    `Stack \`${stack}\`'s volumes ${names(relabelled)} are labelled environment ` +
    `${was.map((e) => (e ? `\`${e}\`` : "(none)")).join(", ")}, and it is configured as \`${environment}\`. A volume's ` +
    `labels cannot change in place: the deploy would replace them, and deleting the replaced ones deletes ` +
    `the data under the same names. Nothing was changed.${setBack}`
  );
}

function unlabelledProblem(stack: string, unlabelled: readonly LabelledVolume[]): string {
  return (
    `${unlabelled.length === 1 ? "Volume" : "Volumes"} ${names(unlabelled)} ` +
    `${unlabelled.length === 1 ? "exists" : "exist"} on this Docker host without the labels stack \`${stack}\` gives ` +
    `its volumes (\`edms.stack\`, \`edms.environment\`, \`edms.data\`, \`edms.role\`). Docker cannot ` +
    `add labels to a volume: once deployed, the next \`pulumi up\` would replace it, deleting the data. ` +
    `Nothing was changed. Copy the data into a volume created with those labels under that name, or remove ` +
    `the volume if it holds nothing of the stack's.`
  );
}

const names = (volumes: readonly LabelledVolume[]) =>
  volumes
    .map((v) => v.name)
    .sort()
    .join(", ");

/** The prefix a data volume (database, media, backups) is named with; undefined for any other. */
function dataPrefix(v: LabelledVolume): string | undefined {
  return DATA_VOLUME_NAMES.get(v.role)?.exec(v.name)?.[1];
}

/**
 * Why the program must not run with `namePrefix`: the stack's data volumes on the host (its database, media or
 * backups, labelled with the stack) carry another prefix. Docker cannot rename a volume, so the deploy would
 * start on empty volumes and delete those at its end (outside production nothing is retained), the backups
 * with them. Undefined when every data volume of the stack is named with `namePrefix`.
 */
export function movedPrefixProblem(
  stack: string,
  namePrefix: string,
  volumes: readonly LabelledVolume[],
): string | undefined {
  const data = volumes.filter((v) => DATA_VOLUME_NAMES.has(v.role));
  const elsewhere = data.filter((v) => dataPrefix(v) !== namePrefix);
  if (!elsewhere.length) {
    return undefined;
  }
  const earlier = [...new Set(elsewhere.map(dataPrefix))];
  const here = data.filter((v) => dataPrefix(v) === namePrefix);
  const nothing = "Nothing was changed.";
  if (here.length) {
    // Which set holds the stack's data only the operator can tell: no one-line fix would be true.
    return (
      `Stack \`${stack}\` has data volumes on this Docker host under \`edms:namePrefix\` \`${namePrefix}\` ` +
      `(${names(here)}) and also named otherwise (${names(elsewhere)}). ${nothing} Find which hold ` +
      `the stack's data (\`edms-ops status --stack ${stack}\` reads the configured ones), back up or export ` +
      `what the others hold, remove them by hand, and deploy again.`
    );
  }
  const setBack =
    earlier.length === 1 && earlier[0] !== undefined
      ? `set it back with \`pulumi config set edms:namePrefix ${earlier[0]} --stack ${stack}\``
      : `set \`edms:namePrefix\` back to the prefix of those volumes`;
  return (
    `\`edms:namePrefix\` is \`${namePrefix}\`, but stack \`${stack}\` keeps its data on this Docker host in ` +
    `${names(elsewhere)}. Docker cannot rename a volume: this deploy would start the stack on new, empty ` +
    `volumes and, outside production, remove those at its end, its backups with them. ${nothing} ` +
    `To keep the data, ${setBack}; to move the stack to \`${namePrefix}\` afterwards, follow "Renaming a ` +
    `stack's prefix" in docs/operations.md, which starts from the old prefix.`
  );
}
