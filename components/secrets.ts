import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export interface EdmsSecretsArgs {
  /** `edms:superuserPassword` when set; otherwise one is generated. */
  readonly superuserPassword?: pulumi.Input<string>;
}

/**
 * Generated once per stack and kept in state (encrypted): the database and Redis passwords, Django's SECRET_KEY and
 * the bootstrap superuser's password, the backup repositories' password. Every value is a Pulumi secret.
 */
export class EdmsSecrets extends pulumi.ComponentResource {
  /** The superuser's: postgres, migrate, bootstrap and edms-ops; never in web or worker. */
  readonly postgresPassword: pulumi.Output<string>;
  /** The application role's, which web and worker connect as (model/containers.ts APP_DB_USER). */
  readonly appDbPassword: pulumi.Output<string>;
  /** The backup role's, which the scheduler dumps as (model/containers.ts BACKUP_DB_USER). */
  readonly backupDbPassword: pulumi.Output<string>;
  /** Redis' `requirepass`: celery's broker and the cache refuse every client without it. */
  readonly redisPassword: pulumi.Output<string>;
  readonly djangoSecretKey: pulumi.Output<string>;
  readonly superuserPassword: pulumi.Output<string>;
  /** Encrypts the stack's restic repositories (local and off-host); a stack output, so DR needs no host. */
  readonly backupPassword: pulumi.Output<string>;

  constructor(name: string, args: EdmsSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edms:index:EdmsSecrets", name, {}, opts);
    // Only URL- and shell-safe characters: the password ends up in a libpq connection string.
    const postgres = new random.RandomPassword(
      `${name}-postgres-password`,
      { length: 32, special: false },
      { parent: this },
    );
    const app = new random.RandomPassword(
      `${name}-app-db-password`,
      { length: 32, special: false },
      { parent: this },
    );
    const backupDb = new random.RandomPassword(
      `${name}-backup-db-password`,
      { length: 32, special: false },
      { parent: this },
    );
    const secretKey = new random.RandomPassword(
      `${name}-django-secret-key`,
      { length: 64, special: true, overrideSpecial: "!#%()*+-.:;<=>?@[]^_{|}~" },
      { parent: this },
    );
    // Letters and digits: it is written into redis.conf and into a redis:// URL.
    const redis = new random.RandomPassword(
      `${name}-redis-password`,
      { length: 32, special: false },
      { parent: this },
    );
    this.postgresPassword = pulumi.secret(postgres.result);
    this.appDbPassword = pulumi.secret(app.result);
    this.backupDbPassword = pulumi.secret(backupDb.result);
    this.redisPassword = pulumi.secret(redis.result);
    this.djangoSecretKey = pulumi.secret(secretKey.result);
    if (args.superuserPassword !== undefined) {
      this.superuserPassword = pulumi.secret(pulumi.output(args.superuserPassword));
    } else {
      const generated = new random.RandomPassword(
        `${name}-superuser-password`,
        { length: 24, special: false },
        { parent: this },
      );
      this.superuserPassword = pulumi.secret(generated.result);
    }
    const backup = new random.RandomPassword(
      `${name}-backup-password`,
      { length: 48, special: false },
      { parent: this },
    );
    this.backupPassword = pulumi.secret(backup.result);
    this.registerOutputs({});
  }
}
