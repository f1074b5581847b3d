import { expect } from "chai";
import {
  alertSecrets,
  ConfigError,
  durationMs,
  maskAlertTargets,
  offsiteSecrets,
  redactTarget,
  redactRepository,
  validateSettings,
} from "../../../model/settings";
import { VOLUME_ROLES, volumeProtection } from "../../../model/protection";

const valid = { environment: "staging", version: "2.0.0" };
/** What production needs to serve HTTPS, where a test is about something else. */
const PRODUCTION_HTTPS = { tlsUpstream: true, django: { allowedHosts: ["edms.example.com"] } };

function problemsOf(raw: Record<string, unknown>, stack = "s"): string[] {
  try {
    validateSettings(stack, raw);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error("expected a ConfigError");
}

describe("config validation", function () {
  it("applies the design's defaults per environment", function () {
    const dev = validateSettings("dev", { environment: "dev", version: "1.0.0" });
    expect(dev).to.deep.include({
      backendImage: "edms-sample/backend",
      postgresImage: "postgres:16",
      redisImage: "redis:7",
      namePrefix: "edms",
      dataGeneration: 0,
      httpPort: 8000,
      backup: {
        beforeDeploy: false,
        drillBeforeDeploy: false,
        keep: 5,
        image: "restic/restic:0.18.0",
        schedule: "off",
        schedulerImage: "node:20-bookworm-slim",
        rpo: "off",
      },
      alerts: { offsiteLagBackups: 3, offsiteLagHours: 24 },
      bootstrap: {
        superuser: "admin",
        email: "admin@localhost",
        fixtures: ["initial_users", "initial_settings"],
      },
    });
    expect(dev.names.postgresVolume).to.equal("edms_postgres_data");
    const prod = validateSettings("production", {
      environment: "production",
      version: "1.0.0",
      ...PRODUCTION_HTTPS,
    });
    expect(prod.backup).to.deep.equal({
      beforeDeploy: true,
      drillBeforeDeploy: true,
      keep: 14,
      image: "restic/restic:0.18.0",
      schedule: "0 */6 * * *",
      schedulerImage: "node:20-bookworm-slim",
      rpo: "12h",
    });
    expect(prod.names.schedulerContainer).to.equal("edms-scheduler");
    expect(validateSettings("s", valid).backup.schedule).to.equal("@daily");
    expect(prod.proxy).to.deep.equal({ enabled: true, image: "haproxy:2.8" });
    expect(prod.names.proxyContainer).to.equal("edms-proxy");
    const off = validateSettings("s", { ...valid, proxy: '{"enabled": false}' });
    expect(off.proxy).to.deep.equal({ enabled: false, image: "haproxy:2.8" });
    const tls = validateSettings("s", {
      ...valid,
      proxy: { tls: { certificateFile: "certs/e.crt", keyFile: "certs/e.key" } },
    });
    expect(tls.proxy.tls).to.deep.equal({
      port: 443,
      certificateFile: "certs/e.crt",
      keyFile: "certs/e.key",
    });
  });

  it("takes restic's daily/weekly/monthly keeps on top of `keep`", function () {
    const s = validateSettings("x", {
      ...valid,
      backup: { keep: 3, keepDaily: "7", keepWeekly: 4, keepMonthly: 0 },
    });
    expect(s.backup).to.deep.include({ keep: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 0 });
  });

  it("accepts config as the CLI hands it over: numbers and objects as strings", function () {
    const s = validateSettings("x", {
      ...valid,
      httpPort: "8080",
      dataGeneration: "3",
      backup: '{"keep": 2}',
    });
    expect(s.httpPort).to.equal(8080);
    expect(s.names.mediaVolume).to.equal("edms_media_files_g3");
    expect(s.backup).to.deep.include({
      beforeDeploy: false,
      drillBeforeDeploy: false,
      keep: 2,
      image: "restic/restic:0.18.0",
    });
  });

  it("takes a cron schedule: 5 fields, 6 with seconds first, a nickname, or off", function () {
    for (const schedule of ["15 3 * * *", "*/20 * * * * *", "@hourly", " 0 */4 * * 1-5 ", "off"]) {
      const s = validateSettings("x", { ...valid, backup: { schedule } });
      expect(s.backup.schedule).to.equal(schedule.trim());
    }
    const prod = validateSettings("production", {
      environment: "production",
      version: "1",
      ...PRODUCTION_HTTPS,
      backup: '{"schedule": "30 1 * * *"}',
    });
    expect(prod.backup.schedule).to.equal("30 1 * * *");
  });

  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      "unknown environment",
      { ...valid, environment: "prod" },
      /`edms:environment` must be one of dev, staging, production/,
    ],
    ["missing environment", { version: "1" }, /`edms:environment` is required/],
    [
      "missing version",
      { environment: "dev" },
      /`edms:version` is required: set the release to deploy/,
    ],
    ["empty version", { environment: "dev", version: " " }, /`edms:version` must be a release tag/],
    [
      "dataGeneration on production",
      { environment: "production", version: "1", dataGeneration: 0 },
      /`edms:dataGeneration` is not allowed on production: production data is never reinitialised\. Remove it from Pulumi\.production\.yaml\./,
    ],
    [
      "backup.beforeDeploy false on production",
      { environment: "production", version: "1", backup: { beforeDeploy: false } },
      /`edms:backup.beforeDeploy: false` is not allowed on production/,
    ],
    [
      "backup.drillBeforeDeploy false on production",
      { environment: "production", version: "1", backup: { drillBeforeDeploy: "false" } },
      /`edms:backup.drillBeforeDeploy: false` is not allowed on production: .* Remove `drillBeforeDeploy` or set it to true\./,
    ],
    [
      "backup.drillBeforeDeploy without the pre-deploy backup",
      { environment: "staging", version: "1", backup: { drillBeforeDeploy: true } },
      /`edms:backup.drillBeforeDeploy: true` needs `edms:backup.beforeDeploy: true`/,
    ],
    [
      "backup.schedule off on production",
      { environment: "production", version: "1", backup: { schedule: "off" } },
      /`edms:backup.schedule: off` is not allowed on production: .* Remove `schedule` for the default \(`0 \*\/6 \* \* \*`\) or set a cron expression/,
    ],
    [
      "a schedule that is not cron",
      { ...valid, backup: { schedule: "every day" } },
      /`edms:backup` schedule `every day` has 2 field\(s\); a cron expression has 5 .* or 6 .*: e\.g\. `\{.*schedule: "0 \*\/6 \* \* \*"/,
    ],
    [
      "a schedule with an out-of-range field",
      { ...valid, backup: { schedule: "61 * * * *" } },
      /`edms:backup` schedule `61 \* \* \* \*` is not a cron expression \(Invalid value for minute: 61\)/,
    ],
    [
      "a schedule with a year field",
      { ...valid, backup: { schedule: "0 0 0 * * * 2030" } },
      /schedule `0 0 0 \* \* \* 2030` has 7 field\(s\)/,
    ],
    [
      "an unknown nickname",
      { ...valid, backup: { schedule: "@often" } },
      /`@often` is not a cron nickname/,
    ],
    [
      "a schedule that is no string",
      { ...valid, backup: { schedule: 5 } },
      /schedule must be a cron expression or `off`/,
    ],
    [
      "bad namePrefix",
      { ...valid, namePrefix: "EDMS_1" },
      /`edms:namePrefix` must match \[a-z\]\[a-z0-9-\]\*/,
    ],
    [
      "port 0",
      { ...valid, httpPort: 0 },
      /`edms:httpPort` must be 1–65535: choose a port between 1 and 65535/,
    ],
    ["port 70000", { ...valid, httpPort: "70000" }, /`edms:httpPort` must be 1–65535/],
    ["port not a number", { ...valid, httpPort: "http" }, /`edms:httpPort` must be a whole number/],
    ["keep 0", { ...valid, backup: { keep: 0 } }, /`edms:backup` keep must be at least 1/],
    [
      "healthWaitSeconds 5",
      { ...valid, healthWaitSeconds: 5 },
      /`edms:healthWaitSeconds` must be 10 or more: use a whole number of seconds from 10 to 3600/,
    ],
    [
      "healthWaitSeconds 1.5",
      { ...valid, healthWaitSeconds: "1.5" },
      /`edms:healthWaitSeconds` must be a whole number/,
    ],
    [
      "negative keepWeekly",
      { ...valid, backup: { keepWeekly: -1 } },
      /`edms:backup` keepWeekly must be 0 or more: e\.g\. `\{.*keepWeekly: 4/,
    ],
    [
      "negative dataGeneration",
      { ...valid, dataGeneration: -1 },
      /`edms:dataGeneration` must be 0 or more/,
    ],
    [
      "non-string fixtures",
      { ...valid, bootstrap: { fixtures: ["initial_users", 3] } },
      /`edms:bootstrap` fixtures must all be strings/,
    ],
    [
      "a fixture name that is an option",
      { ...valid, bootstrap: { fixtures: ["initial_users", "--database=other"] } },
      /`edms:bootstrap` fixtures: a fixture name may not begin with `-`/,
    ],
    [
      "fixtures not a list",
      { ...valid, bootstrap: { fixtures: "initial_users" } },
      /`edms:bootstrap` fixtures must be a list/,
    ],
    ["unknown key", { ...valid, verison: "2" }, /`edms:verison` is not a known setting/],
    ["unknown backup field", { ...valid, backup: { keepp: 3 } }, /`edms:backup` .*keepp/],
    [
      "an off-host repository that is not restic's",
      { ...valid, backup: { offsite: { repository: "ftp://host/x" } } },
      /`edms:backup` offsite\.repository must be a restic repository \(s3:, sftp:, rest:/,
    ],
    [
      "off-host credentials with a bad variable name",
      { ...valid, backup: { offsite: { repository: "s3:host/b", env: { "aws-key": "x" } } } },
      /`edms:backup` offsite\.env must map environment variable names/,
    ],
    [
      "an off-host credential in plain text",
      {
        ...valid,
        backup: { offsite: { repository: "s3:host/b", env: { AWS_SECRET_ACCESS_KEY: "s3cret" } } },
      },
      /offsite\.env holds a value in plain text: set each with `pulumi config set --secret --path edms:backup\.offsite\.env\.<NAME>/,
    ],
    ...["PATH", "LD_PRELOAD", "BASH_ENV", "RCLONE_SFTP_SSH"].map(
      (name): [string, Record<string, unknown>, RegExp] => [
        `an off-host variable that is not a backend's (${name})`,
        {
          ...valid,
          backup: { offsite: { repository: "s3:host/b", env: { [name]: { secure: "v1:x" } } } },
        },
        new RegExp(
          `offsite\\.env may set restic's backend variables only .*not \`${name}\`: remove it`,
        ),
      ],
    ),
    [
      "an rclone remote with its credentials as connection-string parameters",
      {
        ...valid,
        backup: {
          offsite: { repository: "rclone::s3,access_key_id=AK,secret_access_key=wJ/S+K:b/edms" },
        },
      },
      /offsite\.repository is an rclone remote with connection-string parameters .*process list.*Use restic's own backend/,
    ],
    [
      "an off-host password in plain text",
      { ...valid, backup: { offsite: { repository: "rest:https://u:pw@host/edms/" } } },
      /offsite\.repository holds a password in plain text: set it with `pulumi config set --secret --path/,
    ],
    [
      "an empty backup image",
      { ...valid, backup: { image: " " } },
      /`edms:backup` image must be an image reference/,
    ],
    [
      "a restic image older than the minimum",
      { ...valid, backup: { image: "restic/restic:0.16.4" } },
      /`edms:backup` image names a restic older than 0\.17, the oldest edms-ops supports: use restic\/restic:0\.18\.0/,
    ],
    [
      "a mirrored restic image older than the minimum",
      { ...valid, backup: { image: "registry.example:5000/mirror/restic:v0.14.0" } },
      /image names a restic older than 0\.17/,
    ],
    [
      "proxy.enabled not a boolean",
      { ...valid, proxy: { enabled: "yes" } },
      /`edms:proxy` enabled must be true or false: e\.g\. `\{enabled: true, image: haproxy:2\.8/,
    ],
    ["unknown proxy field", { ...valid, proxy: { imag: "haproxy:2.8" } }, /`edms:proxy` .*imag/],
    [
      "TLS key given as PEM text instead of a file",
      {
        ...valid,
        proxy: { tls: { certificateFile: "c.pem", keyFile: "-----BEGIN PRIVATE KEY-----\nx" } },
      },
      /`edms:proxy` tls\.keyFile must be a file path, not the PEM text itself/,
    ],
    [
      "TLS port equal to httpPort",
      {
        ...valid,
        httpPort: 8443,
        proxy: { tls: { port: 8443, certificateFile: "c", keyFile: "k" } },
      },
      /`edms:proxy\.tls\.port` must differ from `edms:httpPort` \(8443\)/,
    ],
    [
      "TLS with the proxy off",
      { ...valid, proxy: { enabled: false, tls: { certificateFile: "c", keyFile: "k" } } },
      /`edms:proxy\.tls` needs the proxy/,
    ],
  ];
  for (const [what, raw, message] of cases) {
    it(`rejects ${what}`, function () {
      expect(problemsOf(raw).join("\n")).to.match(message);
    });
  }

  it("a stack named production (or prod as a word) is production, and dev and staging are what they say: one edit of edms:environment cannot drop production's guards", function () {
    const problems = (stack: string, environment: string) => {
      try {
        validateSettings(stack, { environment, version: "1", dataGeneration: 1 });
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems("production", "staging").join()).to.match(
      /`edms:environment` is `staging` on stack `production`, whose name says production: .* Set `edms:environment: production`, or use a stack of another name/,
    );
    for (const stack of ["prod", "prod-eu", "edms_production", "Production.2"]) {
      expect(problems(stack, "dev").join(), stack).to.contain("whose name says production");
    }
    expect(problems("staging", "dev").join()).to.contain("whose name says staging");
    expect(problems("dev", "staging").join()).to.contain("whose name says dev");
    for (const stack of [
      "product-demo",
      "reproduce",
      "customer-a",
      "stg",
      "pre-prod",
      "non_prod",
    ]) {
      expect(problems(stack, "staging"), stack).to.deep.equal([]);
    }
  });

  it("collects every problem into one error that names each key", function () {
    try {
      validateSettings("production", {
        environment: "production",
        dataGeneration: 1,
        httpPort: 0,
        namePrefix: "-x",
        backup: { beforeDeploy: false, keep: 0 },
      });
      expect.fail("expected a ConfigError");
    } catch (err) {
      const message = (err as Error).message;
      expect(message).to.match(/^Stack `production` has 8 configuration problem\(s\):/);
      for (const key of [
        "version",
        "namePrefix",
        "dataGeneration",
        "httpPort",
        "backup",
        "backup.beforeDeploy",
        "tlsUpstream",
        "django.allowedHosts",
      ]) {
        expect(message).to.contain(`\`edms:${key}`);
      }
    }
  });
});

describe("off-host backup settings", function () {
  it("keep only a redacted repository in Settings; the credentials leave only through offsiteSecrets", function () {
    const backup = {
      offsite: {
        repository: "s3:s3.example/bucket/edms?region=x",
        env: { AWS_SECRET_ACCESS_KEY: "other-s3cret" },
      },
    };
    // As the stack file holds it: the credential encrypted; as the program gets it: decrypted.
    const stackFile = {
      offsite: { ...backup.offsite, env: { AWS_SECRET_ACCESS_KEY: { secure: "v1:abc" } } },
    };
    const settings = validateSettings("p", { ...valid, backup: stackFile });
    expect(settings.backup.offsite).to.deep.equal({ display: "s3:s3.example/bucket/edms" });
    expect(JSON.stringify(settings)).not.to.match(/s3cret/);
    // restic allows @ in the password: everything up to the last @ before the path goes.
    expect(redactRepository("rest:https://u:p@ss@backup.example:8000/edms/")).to.equal(
      "rest:https://backup.example:8000/edms/",
    );
    expect(offsiteSecrets(JSON.stringify(backup))).to.deep.equal({
      repository: backup.offsite.repository,
      env: { AWS_SECRET_ACCESS_KEY: "other-s3cret" },
    });
    expect(offsiteSecrets(undefined)).to.equal(undefined);
  });

  it("accept values the stack file keeps encrypted (edms-ops cannot read them, and does not need to)", function () {
    const settings = validateSettings("p", {
      ...valid,
      backup: {
        offsite: {
          repository: { secure: "v1:abc" },
          env: { AWS_SECRET_ACCESS_KEY: { secure: "v1:def" } },
        },
      },
    });
    expect(settings.backup.offsite).to.deep.equal({ display: "(secret)" });
    expect(redactRepository("s3:s3.amazonaws.com/bucket")).to.equal("s3:s3.amazonaws.com/bucket");
  });
});

describe("protection table", function () {
  it("production protects and retains postgres, media and backups; never redis", function () {
    for (const role of VOLUME_ROLES) {
      const persistent = role !== "redis";
      expect(volumeProtection("production", role), role).to.deep.equal({
        protect: persistent,
        retainOnDelete: persistent,
        data: persistent ? "persistent" : "cache",
      });
    }
  });

  it("staging and dev protect nothing", function () {
    for (const env of ["staging", "dev"] as const) {
      for (const role of VOLUME_ROLES) {
        expect(volumeProtection(env, role)).to.include({ protect: false, retainOnDelete: false });
      }
    }
  });
});

describe("config validation: edms:alerts and edms:backup.rpo", function () {
  const TOKEN = "xoxb-9f8e7d6c5b4a";
  const staging = (alerts: unknown, backup?: unknown) => ({
    ...valid,
    alerts,
    ...(backup ? { backup } : {}),
  });

  it("refuses a target URL in plain text, naming the key and the --secret fix", function () {
    const problems = problemsOf(
      staging({ apprise: [{ secure: "v1:a" }, `slack://T/${TOKEN}/C`], webhook: "https://h/x" }),
    );
    expect(problems).to.have.length(1);
    expect(problems[0]).to.contain("`edms:alerts`");
    expect(problems[0]).to.contain(
      "alerts.apprise[1] holds a notification URL in plain text (it carries a token): set it with `pulumi config set --secret --path 'edms:alerts.apprise[1]' <url>`",
    );
    expect(problems[0]).to.contain(
      "alerts.webhook holds a URL in plain text (it carries a token): set it with `pulumi config set --secret --path edms:alerts.webhook <url>`",
    );
    // The refusal never repeats the value.
    expect(problems[0]).not.to.contain(TOKEN);
  });

  it("keeps encrypted targets as placeholders: Settings (the scheduler's env) never hold a URL", function () {
    const settings = validateSettings(
      "s",
      staging({ apprise: [{ secure: "v1:a" }, { secure: "v1:b" }], webhook: { secure: "v1:c" } }),
    );
    expect(settings.alerts).to.deep.equal({
      apprise: ["(secret)", "(secret)"],
      webhook: "(secret)",
      offsiteLagBackups: 3,
      offsiteLagHours: 24,
    });
    const decrypted = { apprise: [`slack://T/${TOKEN}/C`], webhook: `https://h/${TOKEN}` };
    expect(alertSecrets(decrypted)).to.deep.equal(decrypted);
    const masked = validateSettings("s", staging(maskAlertTargets(decrypted)));
    expect(JSON.stringify(masked)).not.to.contain(TOKEN);
    expect(alertSecrets({ offsiteLagHours: 2 })).to.equal(undefined);
  });

  it("checks thresholds and needs a schedule to send from", function () {
    expect(problemsOf(staging({ offsiteLagBackups: 0, offsiteLagHours: -1 }))[0]).to.match(
      /offsiteLagBackups must be at least 1; offsiteLagHours must be more than 0/,
    );
    expect(
      problemsOf(staging({ webhook: { secure: "v1:c" } }, { schedule: "off" })).join("\n"),
    ).to.contain("`edms:alerts` needs `edms:backup.schedule`");
  });

  it("edms:backup.rpo: a duration or off; defaults 12h on production, 48h on staging, off on dev", function () {
    expect(validateSettings("s", { ...valid, backup: { rpo: "6h" } }).backup.rpo).to.equal("6h");
    expect(validateSettings("s", { ...valid, backup: { rpo: "off" } }).backup.rpo).to.equal("off");
    expect(validateSettings("s", valid).backup.rpo).to.equal("48h");
    for (const bad of ["6", "6 hours", "10s", "0m"]) {
      expect(problemsOf({ ...valid, backup: { rpo: bad } })[0], bad).to.contain("rpo must be");
    }
    expect(durationMs("30m")).to.equal(1_800_000);
    expect(durationMs("2d")).to.equal(172_800_000);
  });

  it("redacts a target to scheme and host", function () {
    expect(redactTarget(`https://u:${TOKEN}@hooks.example.com:8443/x/${TOKEN}?k=1`)).to.equal(
      "https://hooks.example.com/…",
    );
    expect(redactTarget(`discord://${TOKEN}/abc`)).to.equal("discord://…");
    expect(redactTarget("not a url")).to.equal("(unreadable URL)");
  });
});
